"""Bad input: one sentence, exit code 4, no traceback, and quickly."""

from __future__ import annotations

import time
from pathlib import Path

from tests.pytester.fakeapi import FakeAPIServer, kubeconfig_for


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


def test_kubeconfig_from_env(run_netconform, kubeconfig: Path, monkeypatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    result = run_netconform("--context=elsewhere")
    assert_one_sentence(result, "context 'elsewhere' is not in kubeconfig *; known contexts: fake")


def test_unreachable_api_fails_fast(run_netconform, tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(kubeconfig_for("https://127.0.0.1:1", context="dead"))
    started = time.monotonic()
    result = run_netconform(f"--kubeconfig={path}")
    assert_one_sentence(
        result, "cannot reach the Kubernetes API at https://127.0.0.1:1 (context dead): connection refused"
    )
    assert time.monotonic() - started < 20


def test_missing_permissions_are_named(run_netconform, kubeconfig: Path, fake_api: FakeAPIServer) -> None:
    fake_api.cluster.faults.forbidden = {"create namespaces", "create pods/exec"}
    result = run_netconform(f"--kubeconfig={kubeconfig}")
    assert_one_sentence(
        result,
        "context fake lacks permissions netconform needs: create namespaces, create pods/exec "
        "(apply suites/rbac.yaml and bind it)",
    )
    assert ("POST", "/api/v1/namespaces") not in fake_api.cluster.requests


def test_selector_matching_no_node(run_netconform, kubeconfig: Path) -> None:
    result = run_netconform(f"--kubeconfig={kubeconfig}", "--nodes=pool=none")
    assert_one_sentence(result, "no schedulable Ready node matches --nodes 'pool=none'")


def test_no_ready_node(run_netconform, kubeconfig: Path, fake_api: FakeAPIServer) -> None:
    for node in fake_api.cluster.nodes:
        node["status"]["conditions"][0]["status"] = "False"
    result = run_netconform(f"--kubeconfig={kubeconfig}")
    assert_one_sentence(result, "no node is both Ready and schedulable: lab-node-1 (NotReady), *")


def test_bad_option_value(run_netconform, kubeconfig: Path) -> None:
    result = run_netconform(f"--kubeconfig={kubeconfig}", "--sweep-age=soon")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--sweep-age: invalid parse_age value: 'soon'*"])


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
