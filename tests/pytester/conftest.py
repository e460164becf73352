"""Fixtures for running netconform in a pytest subprocess where no cluster is needed (bad input).

Anything that needs a cluster runs against the real lab instead: tests/lab/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "suites"


def kubeconfig_for(server: str, context: str = "dead") -> str:
    """A minimal kubeconfig (one cluster, user and context) pointing at `server`."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {context}-cluster
  cluster:
    server: {server}
    insecure-skip-tls-verify: true
users:
- name: {context}-user
  user:
    token: not-a-token
contexts:
- name: {context}
  context:
    cluster: {context}-cluster
    user: {context}-user
current-context: {context}
"""


@pytest.fixture
def dead_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose API is 127.0.0.1:1 (refuses at once): for checks that happen before connecting."""
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_for("https://127.0.0.1:1"))
    return path


@pytest.fixture
def run_netconform(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run `pytest <suites> ARGS` in a subprocess from the pytester dir."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(pytester.path))  # no ~/.kube/config unless a test writes one
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    def run(*args: str, timeout: float = 120) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            str(SUITES),
            "-p",
            "no:randomly",
            f"--rootdir={REPO}",
            "-c",
            str(REPO / "pyproject.toml"),
            *args,
            timeout=timeout,
        )

    return run
