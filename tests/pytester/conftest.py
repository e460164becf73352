"""Fixtures for running netconform in a pytest subprocess against the fake API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pytester.fakeapi import FakeAPIServer, FakeCluster, kubeconfig_for

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "suites"


@pytest.fixture
def fake_api() -> Iterator[FakeAPIServer]:
    with FakeAPIServer(FakeCluster(node_count=3)) as server:
        yield server


@pytest.fixture
def kubeconfig(tmp_path: Path, fake_api: FakeAPIServer) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_for(fake_api.url))
    return path


@pytest.fixture
def run_netconform(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run `pytest <suites> ARGS` in a subprocess from the pytester dir, with the fake exec plugin."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "tests" / "pytester"), str(REPO)]))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(pytester.path))  # no ~/.kube/config unless a test writes one
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    def run(*args: str, fake_exec: bool = True, timeout: float = 120) -> pytest.RunResult:
        extra = ["-p", "fakeexec"] if fake_exec else []
        return pytester.runpytest_subprocess(
            str(SUITES),
            *extra,
            "-p",
            "no:randomly",
            f"--rootdir={REPO}",
            "-c",
            str(REPO / "pyproject.toml"),
            *args,
            timeout=timeout,
        )

    return run
