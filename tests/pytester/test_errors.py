"""Bad input that needs no cluster: one sentence, exit code 4, no traceback, and quickly.

The errors that need a cluster (missing permissions, no matching or Ready node) are tested on the
real lab: tests/lab/test_suite_real.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.pytester.conftest import kubeconfig_for


def assert_one_sentence(result, pattern: str) -> None:
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: netconform: {pattern}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_no_kubeconfig(run_netconform) -> None:
    assert_one_sentence(run_netconform(), "no cluster configured: pass --kubeconfig, set KUBECONFIG, *")


def test_kubeconfig_that_does_not_exist(run_netconform, tmp_path: Path) -> None:
    result = run_netconform(f"--kubeconfig={tmp_path / 'missing'}")
    assert_one_sentence(result, "kubeconfig */missing (from --kubeconfig) does not exist")


def test_kubeconfig_from_env(run_netconform, dead_kubeconfig: Path, monkeypatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(dead_kubeconfig))
    result = run_netconform("--context=elsewhere")
    assert_one_sentence(result, "context 'elsewhere' is not in kubeconfig *; known contexts: dead")


def test_unreachable_api_fails_fast(run_netconform, tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(kubeconfig_for("https://127.0.0.1:1", context="dead"))
    started = time.monotonic()
    result = run_netconform(f"--kubeconfig={path}")
    assert_one_sentence(
        result, "cannot reach the Kubernetes API at https://127.0.0.1:1 (context dead): connection refused"
    )
    assert time.monotonic() - started < 20


def test_bad_option_value(run_netconform, dead_kubeconfig: Path) -> None:
    result = run_netconform(f"--kubeconfig={dead_kubeconfig}", "--sweep-age=soon")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*argument --sweep-age: 'soon' is not a duration like 2s, 500ms, 5m, 1h or 1m30s*"])


def test_sweep_age_below_the_floor_is_refused(run_netconform, dead_kubeconfig: Path) -> None:
    """`--sweep-age 0` would sweep another machine's run 5 s old: refused before anything connects."""
    result = run_netconform(f"--kubeconfig={dead_kubeconfig}", "--sweep-age=0")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*argument --sweep-age: '0' is shorter than 10m*"])


def test_project_tests_never_touch_a_cluster(pytester, monkeypatch) -> None:
    """`pytest tests/` (no suites/ in the arguments) must not connect, even with no kubeconfig at all."""
    import os

    from tests.pytester.conftest import REPO

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(pytester.path))
    result = pytester.runpytest_subprocess(
        str(REPO / "tests" / "unit" / "test_dial.py"), f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"), "-q"
    )
    assert result.ret == 0, result.stderr.str()
    assert "netconform:" not in result.stdout.str()
    assert os.environ.get("KUBECONFIG") is None


def test_every_duration_option_takes_go_style_units(run_netconform, dead_kubeconfig: Path) -> None:
    """One parser for all of them: the options are accepted and the run gets as far as connecting."""
    result = run_netconform(
        f"--kubeconfig={dead_kubeconfig}",
        "--agent-timeout=1m30s",
        "--capture-seconds=1m",
        "--ready-timeout=2m30s",
        "--dial-timeout=1s500ms",
        "--sweep-age=1h30m",
    )
    assert_one_sentence(result, "cannot reach the Kubernetes API at https://127.0.0.1:1 *")
    result = run_netconform(f"--kubeconfig={dead_kubeconfig}", "--agent-timeout=later")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*argument --agent-timeout: 'later' is not a duration like *1m30s*"])


def test_userinfo_in_the_server_url_is_never_printed(run_netconform, tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(kubeconfig_for("https://admin:s3cret@127.0.0.1:1", context="dead"))
    result = run_netconform(f"--kubeconfig={path}")
    assert_one_sentence(
        result, "cannot reach the Kubernetes API at https://127.0.0.1:1 (context dead): connection refused"
    )
    assert "s3cret" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("--dial-timeout=" + "9" * 400 + "h", "'9999*...' is outside 1ms..60s"),  # was OverflowError
        ("--dial-timeout=61s", "'61s' is outside 1ms..60s"),  # the probe refused it only later
        ("--dial-timeout=0.5ms", "'0.5ms' is outside 1ms..60s"),  # became the probe's default 2s
        ("--agent-timeout=nan", "'nan' is not a duration"),  # never timed out
        ("--capture-seconds=-3", "'-3' is not a duration"),  # went to tcpdump's timeout as it was
        ("--capture-seconds=10m", "'10m' is outside 1s..5m"),
        ("--stability-count=100001", "'100001' is outside 1..100000"),
        ("--ready-timeout=2h", "'2h' is outside 1s..1h"),
    ],
)
def test_option_values_outside_their_range_are_one_sentence(
    run_netconform, dead_kubeconfig: Path, option: str, said: str
) -> None:
    result = run_netconform(f"--kubeconfig={dead_kubeconfig}", option)
    assert result.ret == 4 and "Traceback" not in result.stderr.str()
    result.stderr.fnmatch_lines([f"*argument {option.split('=')[0]}: {said}*"])
