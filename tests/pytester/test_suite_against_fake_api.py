"""The whole suite against the fake API: collection from the inventory, one fan-out, results, cleanup."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.pytester.fakeapi import FakeAPIServer


def test_healthy_cluster_passes_and_leaves_nothing(run_netconform, kubeconfig: Path, fake_api: FakeAPIServer) -> None:
    result = run_netconform(f"--kubeconfig={kubeconfig}", "-v")
    result.stdout.fnmatch_lines([
        "netconform: cluster fake-cluster (context fake) at http://127.0.0.1:*, Kubernetes v1.34.0-fake, run *",
        "netconform: 3 of 3 nodes selected: lab-node-1 (127.0.0.11), lab-node-2 (127.0.0.12), lab-node-3 (127.0.0.13)",
    ])
    assert result.ret == 0, result.stdout.str()
