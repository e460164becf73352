"""`netconform --version` and `netconform run --help`: what a new user types first."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from netconform.cli import main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"netconform {version('netconform')}\n"
    assert main(["version"]) == 0 and capsys.readouterr().out == f"netconform {version('netconform')}\n"


def test_run_help_says_what_run_does_and_where_pytest_options_go(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Run the shipped suites against a cluster" in out
    assert "--kubeconfig PATH kubeconfig file (default: $KUBECONFIG" in out
    assert "--context NAME kubeconfig context" in out
    assert "`netconform run -- --help` lists them all" in out


@pytest.mark.parametrize(("start", "said"), [(["gate"], "netconform gate"), (None, "ci/gate")])
def test_the_gate_names_itself_as_it_was_started(
    start: list[str] | None,
    said: str,
    tmp_path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From a wheel `netconform gate ...`, its advice says that, not the checkout's ci/gate."""
    from netconform.gate import prog
    from netconform.gate.__main__ import main as gate_main

    monkeypatch.setattr(prog, "name", prog.name)  # put back after the test
    argv = ["check", "--state", str(tmp_path / "none")]
    rc = main([*start, *argv]) if start else gate_main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err == f"{said}: no gate state in {tmp_path / 'none'}: run `{said} baseline` first\n"
