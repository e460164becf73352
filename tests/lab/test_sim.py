"""The simulated cluster (`ci/sim`): up, what the suite sees of it, resize, down, and an interrupted `up`.

Marked `lab`, but it needs no lab: it brings up its own control plane on loopback with KWOK nodes
(about 15 s warm; the first time it builds KWOK, and the lab's binaries if they are not cached).
Skipped unless NETCONFORM_SIM=1, and skipped when a simulated cluster is already up (someone's:
these tests take it down).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SIM = REPO / "ci" / "sim"
STATE = Path(os.environ.get("SIM_STATE", "/var/lib/netconform-sim"))
KUBECONFIG = STATE / "kubeconfig"

pytestmark = pytest.mark.lab


def sim(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(SIM), *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"ci/sim {' '.join(args)} exited {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}")
    return done


def pids_on_file() -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in (STATE / "pids").glob("*.pid")}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module", autouse=True)
def own_sim():
    if os.environ.get("NETCONFORM_SIM") != "1":
        pytest.skip("NETCONFORM_SIM=1 is not set (these tests bring up and take down ci/sim)")
    if os.geteuid() != 0:
        pytest.skip("ci/sim needs root")
    if sim("status", check=False).returncode == 0:
        pytest.skip("a simulated cluster is already up (ci/sim status); these tests would take it down")
    yield
    sim("down", timeout=120, check=False)


def kubectl_json(*args: str) -> dict:
    done = sim("kubectl", *args, "-o", "json", timeout=120)
    return json.loads(done.stdout)


def test_up_nodes_suite_resize_down() -> None:
    started = time.monotonic()
    sim("up", "--nodes", "12", timeout=2400)
    up_s = time.monotonic() - started
    assert sim("status").returncode == 0
    assert sim("env").stdout.strip() == f"export KUBECONFIG={KUBECONFIG}"

    nodes = kubectl_json("get", "nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == [f"sim-node-{i:04d}" for i in range(1, 13)]
    for n in nodes:
        conditions = {c["type"]: c["status"] for c in n["status"]["conditions"]}
        assert conditions["Ready"] == "True", n["metadata"]["name"]
        ip = next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("198.18.0.0/15")
        assert ipaddress.ip_network(n["spec"]["podCIDR"]).subnet_of(ipaddress.ip_network("10.128.0.0/10"))
    zoned = [n for n in nodes if "topology.kubernetes.io/zone" in n["metadata"]["labels"]]
    assert 0 < len(zoned) < len(nodes)  # node 10 has no zone

    # the suite's inventory, plan and collection against it
    done = subprocess.run(
        [
            str(REPO / ".venv/bin/pytest"),
            str(REPO / "suites"),
            "--collect-only",
            "-q",
            f"--kubeconfig={KUBECONFIG}",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = {line.split("[", 1)[1] for line in done.stdout.splitlines() if "::" in line and "[" in line}
    for i in range(1, 13):
        assert any(f"sim-node-{i:04d}" in ids for ids in collected), f"no test involves sim-node-{i:04d}"
    assert any("-to-" in ids for ids in collected)

    # deploy + readiness wait of the probe workload: every pod Ready with an address from its node's podCIDR
    bench = subprocess.run(
        [
            str(REPO / ".venv/bin/python"),
            str(REPO / "ci/simlib/bench.py"),
            "deploy",
            f"--kubeconfig={KUBECONFIG}",
            "--ready-timeout=120",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=REPO,
    )
    assert bench.returncode == 0, bench.stderr[-2000:]
    result = json.loads(bench.stdout.strip().splitlines()[-1])
    assert result["nodes"] == 12 and result["pods"] == 24
    assert result["cleanup"].startswith("removed namespace")

    sim("up", "--nodes", "3")
    assert len(kubectl_json("get", "nodes")["items"]) == 3

    pids = pids_on_file()
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    sim("down", timeout=120)
    assert not STATE.exists()
    assert not [name for name, pid in pids.items() if alive(pid)]
    print(f"ci/sim up --nodes 12 took {up_s:.1f}s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_up_removes_everything(signum: int) -> None:
    sim("down", timeout=120)
    child = subprocess.Popen(
        [str(SIM), "up", "--nodes", "3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "kube-apiserver" not in pids_on_file():
        time.sleep(0.2)
    pids = pids_on_file()
    assert "kube-apiserver" in pids, "ci/sim up did not start the API server within 120s"
    child.send_signal(signum)
    out, _ = child.communicate(timeout=120)
    assert child.returncode != 0, out
    assert "removing what this `up` started" in out
    assert not STATE.exists(), out
    assert not [name for name, pid in pids_on_file().items() if alive(pid)]
    assert not [name for name, pid in pids.items() if alive(pid)], out
