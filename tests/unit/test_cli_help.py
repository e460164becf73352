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
