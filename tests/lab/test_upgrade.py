"""A real upgrade under the gate: the lab at the older Kubernetes (`ci/lab up --version v1.36.3`), gate
baseline, `ci/lab upgrade v1.37.2` (control plane, then node by node: drain, new kubelet + kube-proxy,
uncordon), gate check. A healthy upgrade passes; a fault injected during it (after the control-plane
step) blocks and names its cause.

Marked `upgrade` and skipped unless NETCONFORM_LAB_UPGRADE=1 (`ci/test --upgrade`): it needs the older
build (a cold compile takes many minutes) and takes the lab down and up, so the default `ci/test` leaves
it out. Each test holds the lab lock for its whole sequence and leaves the default lab (`ci/lab up`:
3 nodes, versions.env's Kubernetes) behind. The durations are printed (run with -s to see them).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.conftest import REPO, kubectl_admin, lab, lab_lock, token_kubeconfig
from tests.lab.test_gate_lab import SUBSET, gate

pytestmark = [
    pytest.mark.lab,
    pytest.mark.upgrade,
    pytest.mark.skipif(
        os.environ.get("NETCONFORM_LAB_UPGRADE") != "1",
        reason="the upgrade tests run with `ci/test --upgrade` (NETCONFORM_LAB_UPGRADE=1): older build, lab down/up",
    ),
]
OLD = "v1.36.3"
NEW = next(
    line.split("=", 1)[1].strip()
    for line in (REPO / "ci/lab-build/versions.env").read_text().splitlines()
    if line.startswith("KUBE_VERSION=")
)
STATE = Path("/var/lib/netconform-lab")
NODES = ("lab-node-1", "lab-node-2", "lab-node-3")
UP_TIMEOUT_S = 3600  # a cold build of the older Kubernetes included


def timed(what: str, times: dict[str, float], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = lab(*args, timeout=timeout)
    times[what] = time.monotonic() - started
    return done


@pytest.fixture
def old_lab(admin_kubeconfig: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, float]]]:
    """Under the lab lock throughout: the lab at OLD (3 nodes), a kubeconfig of the suites/rbac.yaml
    ServiceAccount; afterwards the gate closed and the default lab back up."""
    times: dict[str, float] = {}
    with lab_lock():
        try:
            lab("down", timeout=600)
            timed("up --version", times, "up", "--version", OLD, timeout=UP_TIMEOUT_S)
            kubectl_admin(admin_kubeconfig, "apply", "-f", str(REPO / "suites" / "rbac.yaml"))
            kc = tmp_path / "kubeconfig"
            kc.write_text(token_kubeconfig(admin_kubeconfig, "netconform-system", "netconform", "netconform-sa"))
            yield str(kc), times
        finally:  # down removes the gate with everything else
            lab("down", timeout=600)
            lab("up", timeout=UP_TIMEOUT_S)
    print("\nmeasured: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()))


def running_versions(admin: str) -> dict[str, str]:
    nodes = json.loads(kubectl_admin(admin, "get", "nodes", "-o", "json"))["items"]
    found = {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes}
    found["control-plane"] = json.loads(kubectl_admin(admin, "version", "-o", "json"))["serverVersion"]["gitVersion"]
    return found


def baseline(kubeconfig: str, state: Path, times: dict[str, float]) -> None:
    started = time.monotonic()
    base = gate(kubeconfig, state, "baseline", *SUBSET)
    times["gate baseline"] = time.monotonic() - started
    assert base.returncode == 0, base.stdout[-2000:] + base.stderr[-2000:]
    assert "12 of 12 long-lived connections up (6 pairs x pod IP and ClusterIP)" in base.stdout


def check(kubeconfig: str, state: Path, times: dict[str, float]) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = gate(kubeconfig, state, "check", *SUBSET)
    times["gate check"] = time.monotonic() - started
    verdict_file = state / "check" / "verdict.json"
    if verdict_file.exists():  # what the gate said, for the record (-s)
        verdict = json.loads(verdict_file.read_text())
        counts = {k: len(verdict.get(k) or []) for k in ("survived", "churn", "broken", "new_failures", "drained")}
        summary = done.stdout[done.stdout.find("GATE ") :].splitlines()[:12]
        print(f"\ngate check exit {done.returncode}: {counts}\n" + "\n".join(summary))
    return done


def test_a_healthy_upgrade_passes_the_gate(
    old_lab: tuple[str, dict[str, float]], admin_kubeconfig: str, tmp_path: Path
) -> None:
    kubeconfig, times = old_lab
    assert running_versions(admin_kubeconfig) == {"control-plane": OLD, **dict.fromkeys(NODES, OLD)}
    status = lab("status").stdout
    assert f"version: control plane {OLD} (API server reports {OLD})" in status, status
    state = tmp_path / "gate"
    baseline(kubeconfig, state, times)
    upgraded = timed("upgrade", times, "upgrade", NEW, timeout=1800)
    phases = json.loads((STATE / "upgrade.json").read_text())["seconds"]
    times.update({f"upgrade {k}": v for k, v in phases.items()})
    assert f"lab upgraded to {NEW}" in upgraded.stdout
    assert running_versions(admin_kubeconfig) == {"control-plane": NEW, **dict.fromkeys(NODES, NEW)}
    assert f"version: lab-node-3 kubelet + kube-proxy {NEW} (kubelet reports {NEW})" in lab("status").stdout
    done = check(kubeconfig, state, times)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    assert "GATE PASSED" in out
    verdict = json.loads((state / "check" / "verdict.json").read_text())
    assert not verdict["broken"] and not verdict["new_failures"], out[-3000:]
    # kubelet and kube-proxy restarted on every node, every node drained: the gate's DaemonSet pods stayed
    # and kept their containers (a kubelet restart leaves them running), so every held connection survived
    assert "all 12 long-lived connections survived" in out, out[-3000:]
    assert len(verdict["survived"]) == 12 and not verdict["churn"]
    assert verdict["pods"]["now"] == 6


def test_a_fault_during_the_upgrade_blocks_and_names_its_cause(
    old_lab: tuple[str, dict[str, float]], admin_kubeconfig: str, tmp_path: Path
) -> None:
    kubeconfig, times = old_lab
    state = tmp_path / "gate"
    baseline(kubeconfig, state, times)
    # the upgrade runs; once the control plane is at NEW (before the nodes), lab-node-2's flannel ARP goes stale
    started = time.monotonic()
    upgrade = subprocess.Popen(
        [str(REPO / "ci" / "lab"), "upgrade", NEW, "--no-smoke"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert upgrade.stdout is not None
    lines, injected = [], False
    try:
        for line in upgrade.stdout:
            lines.append(line)
            if not injected and f"control plane at {NEW}" in line:
                lab("fault", "stale-arp", "--node", "lab-node-2")
                injected = True
        upgrade.wait(timeout=1800)
    finally:
        if upgrade.poll() is None:
            upgrade.kill()
    times["upgrade"] = time.monotonic() - started
    assert upgrade.returncode == 0 and injected, "".join(lines)[-3000:]
    done = check(kubeconfig, state, times)
    out = done.stdout
    assert done.returncode == 1, out[-3000:] + done.stderr[-2000:]
    assert "GATE BLOCKED" in out
    assert "stale-flannel-arp on lab-node-2" in out, out[-3000:]
    verdict = json.loads((state / "check" / "verdict.json").read_text())
    broken = {(b["hold"]["src"], b["hold"]["dst"]) for b in verdict["broken"]}
    assert broken and all("lab-node-2" in pair for pair in broken), broken
    assert not verdict["churn"]  # every gate pod lived on through the upgrade: these are breaks
