"""The upgrade gate on the lab: a rolling restart of kube-proxy, flanneld and kubelet node by node
passes; a fault injected between the phases blocks and names its cause."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.lab.conftest import REPO, lab, lab_lock

pytestmark = pytest.mark.lab
NODES = ("lab-node-1", "lab-node-2", "lab-node-3")
SUBSET = ["--", "-k", "test_pod_to_pod or test_service", "-q"]  # enough paths to judge, quick to run


def gate(kubeconfig: str, state: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    cmd = [str(REPO / "ci" / "gate"), args[0], f"--state={state}", f"--kubeconfig={kubeconfig}", *args[1:]]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def closed_after(lab_kubeconfig: str, tmp_path: Path):
    yield tmp_path / "gate"
    gate(lab_kubeconfig, tmp_path / "gate", "close")


def test_rolling_restart_passes_the_gate(lab_kubeconfig: str, closed_after: Path) -> None:
    state = closed_after
    with lab_lock():
        base = gate(lab_kubeconfig, state, "baseline", *SUBSET)
        assert base.returncode == 0, base.stdout[-2000:] + base.stderr[-2000:]
        assert "12 of 12 long-lived connections up" in base.stdout
        again = gate(lab_kubeconfig, state, "baseline", *SUBSET)
        assert again.returncode == 2 and "already open" in again.stderr
        for node in NODES:
            for component in ("kube-proxy", "flanneld", "kubelet"):
                lab("restart", component, "--node", node)
        check = gate(lab_kubeconfig, state, "check", *SUBSET)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
    assert "GATE PASSED" in check.stdout and "all 12 long-lived connections survived" in check.stdout
    verdict = json.loads((state / "check" / "verdict.json").read_text())
    assert len(verdict["survived"]) == 12 and not verdict["broken"] and not verdict["new_failures"]


def test_fault_between_the_phases_blocks_and_names_the_cause(lab_kubeconfig: str, closed_after: Path) -> None:
    state = closed_after
    with lab_lock():
        base = gate(lab_kubeconfig, state, "baseline", *SUBSET)
        assert base.returncode == 0, base.stdout[-2000:] + base.stderr[-2000:]
        lab("fault", "stale-arp", "--node", "lab-node-2")
        check = gate(lab_kubeconfig, state, "check", *SUBSET)
    assert check.returncode == 1, check.stdout[-3000:] + check.stderr[-2000:]
    out = check.stdout
    assert "GATE BLOCKED" in out
    assert "stale-flannel-arp on lab-node-2 explains" in out
    assert "likely stale-flannel-arp on lab-node-2" in out
    verdict = json.loads((state / "check" / "verdict.json").read_text())
    broken = {(b["hold"]["src"], b["hold"]["dst"]) for b in verdict["broken"]}
    assert broken and all("lab-node-2" in pair for pair in broken)


def test_check_without_an_open_gate_is_a_usage_error(lab_kubeconfig: str, tmp_path: Path) -> None:
    run = gate(lab_kubeconfig, tmp_path / "nothing", "check")
    assert run.returncode == 2 and "ci/gate baseline" in run.stderr
