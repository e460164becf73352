"""netconform installed in a venv another project shares: that project's pytest runs as if netconform
were not there (its own `--kubeconfig` option, no netconform fixture or import); and every way of
running the suites without a cluster ends in exit 4 with the one sentence, never a skipped green."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.pytester.conftest import SUITES

NO_CLUSTER = "ERROR: netconform: no cluster configured: pass --kubeconfig, set KUBECONFIG, *"

OWN_CONFTEST = """
def pytest_addoption(parser):
    parser.addoption("--kubeconfig", default=None, help="this project's own kubeconfig option")
"""

OWN_TEST = """
import sys


def test_it_reads_its_own_option(pytestconfig):
    assert pytestconfig.getoption("kubeconfig") == "mine.yaml"


def test_nothing_of_netconform_was_imported_or_added(request):
    loaded = [m for m in sys.modules if m.split(".")[0] in ("kubernetes", "scapy") or m.startswith("netconform.")]
    assert sorted(loaded) == ["netconform.installed", "netconform.plugin"], loaded
    assert "cluster" not in request.fixturenames and not request.config.pluginmanager.has_plugin("netconform.plugin.session")
"""


@pytest.fixture
def no_cluster(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(pytester.path))  # no ~/.kube/config
    return pytester


def test_a_project_with_its_own_kubeconfig_option_runs_untouched(no_cluster: pytest.Pytester) -> None:
    no_cluster.makeconftest(OWN_CONFTEST)
    no_cluster.makepyfile(test_own=OWN_TEST)
    result = no_cluster.runpytest_subprocess("--kubeconfig", "mine.yaml", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    helped = no_cluster.runpytest_subprocess("--help").stdout.str()
    assert "--node-selector" not in helped and "--list-checks" not in helped and "netconform" not in helped


@pytest.mark.parametrize(
    "args",
    [
        ["--pyargs", "netconform.suites"],
        ["--pyargs", "netconform.suites.test_dns"],
        ["--pyargs", "netconform.suites.test_dns::test_kubernetes_default_resolves_to_the_api_service"],
        [str(SUITES)],
        [str(SUITES / "test_dns.py")],
        ["--collect-only", "-q", str(SUITES)],
    ],
    ids=["pyargs", "pyargs-module", "pyargs-test", "path", "file", "collect-only"],
)
def test_the_suites_without_a_cluster_exit_4(no_cluster: pytest.Pytester, args: list[str]) -> None:
    result = no_cluster.runpytest_subprocess(*args, "-p", "no:randomly")
    assert result.ret == 4, result.stdout.str()[-2000:]
    result.stderr.fnmatch_lines([NO_CLUSTER])
    assert "skipped" not in result.stdout.str()


def test_netconform_run_without_a_cluster_exits_4(no_cluster: pytest.Pytester) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "netconform.cli", "run"],
        cwd=no_cluster.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ERROR: netconform: no cluster configured: pass --kubeconfig, set KUBECONFIG" in done.stderr
    assert not (no_cluster.path / "reports").exists() or not any((no_cluster.path / "reports").rglob("*-result.json"))


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "pytest", "--pyargs", "netconform.suites", "--list-checks"],
        [sys.executable, "-m", "netconform.cli", "checks"],
    ],
    ids=["list-checks", "netconform-checks"],
)
def test_read_only_listings_never_connect(no_cluster: pytest.Pytester, dead_kubeconfig, command: list[str]) -> None:
    """With a kubeconfig whose API refuses (connecting would be exit 4), the listings still answer."""
    env = {**os.environ, "KUBECONFIG": str(dead_kubeconfig)}
    done = subprocess.run(command, cwd=no_cluster.path, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("test_dns.py: DNS: ") and "    test_tcp_cross_node" in done.stdout
