"""The upgrade gate on the lab, run as the suites/rbac.yaml ServiceAccount (admin only drains, deletes a
pod and injects faults, as an operator's upgrade would): 2 DaemonSet pods per node; a drain
(`--ignore-daemonsets`, as operators run it) is not blocked and a gate pod replaced in it is expected
churn; a kube-proxy restart passes; a fault injected between the phases blocks and names its cause;
without the gate role the gate says in one sentence what is missing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.lab.conftest import REPO, bound_account, kubectl_admin, lab, lab_lock

pytestmark = pytest.mark.lab
NODES = ("lab-node-1", "lab-node-2", "lab-node-3")
SUBSET = ["--", "-k", "test_pod_to_pod or test_service", "-q"]  # enough paths to judge, quick to run
CORDONED_WAIT_S = 60  # the kubelet reports a cordon (its NodeNotSchedulable event) within 10 s, unloaded


def gate(kubeconfig: str, state: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    cmd = [str(REPO / "ci" / "gate"), args[0], f"--state={state}", f"--kubeconfig={kubeconfig}", *args[1:]]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def closed_after(lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path):
    yield tmp_path / "gate"
    gate(lab_kubeconfig, tmp_path / "gate", "close")
    kubectl_admin(admin_kubeconfig, "uncordon", *NODES)


def wait_cordon_reported(admin: str, node: str, since: float) -> None:
    """Until the kubelet has reported node's cordon after `since` (its NodeNotSchedulable event, what the
    gate's check reads for "cordoned at"), bounded. Was a fixed 15 s sleep: this returns when it is there."""
    deadline = time.monotonic() + CORDONED_WAIT_S
    selector = f"involvedObject.kind=Node,involvedObject.name={node},reason=NodeNotSchedulable"
    while True:
        listed = kubectl_admin(admin, "get", "events", "-A", "--field-selector", selector, "-o", "json")
        events = json.loads(listed)["items"]
        stamps = [e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") for e in events]
        if any(s and datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() >= since - 1 for s in stamps):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"waited {CORDONED_WAIT_S}s for the kubelet's NodeNotSchedulable event of {node}")
        time.sleep(1)


def open_baseline(kubeconfig: str, state: Path) -> subprocess.CompletedProcess[str]:
    base = gate(kubeconfig, state, "baseline", *SUBSET)
    assert base.returncode == 0, base.stdout[-2000:] + base.stderr[-2000:]
    # O(nodes): a server and a holder per node, both DaemonSet pods, whatever the number of pairs
    assert "6 pods for 3 nodes (2 per node: DaemonSets gate-server and gate-holder" in base.stdout
    assert "12 of 12 long-lived connections up (6 pairs x pod IP and ClusterIP)" in base.stdout
    return base


def test_a_drain_is_not_blocked_and_a_replaced_gate_pod_is_expected_churn(
    lab_kubeconfig: str, admin_kubeconfig: str, closed_after: Path
) -> None:
    state = closed_after
    with lab_lock():
        open_baseline(lab_kubeconfig, state)
        again = gate(lab_kubeconfig, state, "baseline", *SUBSET)
        assert again.returncode == 2 and "already open" in again.stderr
        started, cordoned_at = time.monotonic(), time.time()
        kubectl_admin(
            admin_kubeconfig, "drain", "lab-node-2", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s"
        )
        drained_in = time.monotonic() - started
        # the node is upgraded and rebooted: its gate server goes (the DaemonSet puts a new one there)
        server = kubectl_admin(
            admin_kubeconfig,
            "-n",
            "netconform-gate",
            "get",
            "pods",
            "-l",
            "netconform.io/gate-role=server",
            "--field-selector",
            "spec.nodeName=lab-node-2",
            "-o",
            "name",
        ).split()
        kubectl_admin(admin_kubeconfig, "-n", "netconform-gate", "delete", *server, "--wait=true", "--timeout=60s")
        # the node stays cordoned (as while it is upgraded) until the kubelet has reported it: the check's
        # "cordoned at" line below rests on that event
        wait_cordon_reported(admin_kubeconfig, "lab-node-2", cordoned_at)
        kubectl_admin(admin_kubeconfig, "uncordon", "lab-node-2")
        check = gate(lab_kubeconfig, state, "check", *SUBSET)
    assert drained_in < 30, f"drain took {drained_in:.0f}s"
    out = check.stdout
    assert check.returncode == 0, out[-3000:] + check.stderr[-2000:]
    assert out.startswith("GATE PASSED") or "\nGATE PASSED: no new failures" in out
    assert "8 of 12 long-lived connections survived, 4 ended with their pods (expected churn)" in out
    assert re.search(
        r"~ lab-node-2: cordoned at \S+ \(NodeNotSchedulable\); gate pods moved: the server on lab-node-2 was replaced",
        out,
    ), out[-3000:]
    verdict = json.loads((state / "check" / "verdict.json").read_text())
    assert not verdict["broken"] and not verdict["new_failures"] and len(verdict["survived"]) == 8
    assert {c["hold"]["dst"] for c in verdict["churn"]} == {"lab-node-2"}  # the holds to the replaced server
    assert verdict["pods"] == {"baseline": 6, "now": 6, "nodes": 3}


def test_a_kube_proxy_restart_passes_the_gate(lab_kubeconfig: str, closed_after: Path) -> None:
    state = closed_after
    with lab_lock():
        open_baseline(lab_kubeconfig, state)
        lab("restart", "kube-proxy", "--node", "lab-node-1")
        check = gate(lab_kubeconfig, state, "check", *SUBSET)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
    assert "GATE PASSED" in check.stdout and "all 12 long-lived connections survived" in check.stdout
    verdict = json.loads((state / "check" / "verdict.json").read_text())
    assert len(verdict["survived"]) == 12 and not verdict["broken"] and not verdict["churn"]


def test_fault_between_the_phases_blocks_and_names_the_cause(lab_kubeconfig: str, closed_after: Path) -> None:
    state = closed_after
    with lab_lock():
        open_baseline(lab_kubeconfig, state)
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
    assert not verdict["churn"]  # every gate pod lived on: these are breaks


def test_check_without_an_open_gate_is_a_usage_error(lab_kubeconfig: str, tmp_path: Path) -> None:
    run = gate(lab_kubeconfig, tmp_path / "nothing", "check")
    assert run.returncode == 2 and "ci/gate baseline" in run.stderr


def test_without_the_gate_role_the_gate_says_what_is_missing_and_does_nothing(
    admin_kubeconfig: str, tmp_path: Path
) -> None:
    """Bound to ClusterRole netconform only (the suite's): the gate's own extra verbs are named, exit 3."""
    # no other gate is open meanwhile (lab lock): nothing in the lab is ours to see
    with bound_account(admin_kubeconfig, "netconform", "no-gate") as kc, lab_lock():
        started = time.monotonic()
        run = gate(kc, tmp_path / "gate", "baseline", *SUBSET, timeout=120)
        took = time.monotonic() - started
        opened = kubectl_admin(
            admin_kubeconfig, "get", "namespace", "netconform-gate", "--ignore-not-found", "-o", "name"
        )
    assert run.returncode == 3, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-1] == (
        "ci/gate: the gate cannot run: missing permissions create configmaps, patch pods, get pods/log "
        "(grant ClusterRole netconform-gate from suites/rbac.yaml)"
    )
    assert "running the suite" not in run.stdout and not opened.strip()  # nothing ran, nothing was created
    assert took < 20, f"the preflight took {took:.0f}s"
