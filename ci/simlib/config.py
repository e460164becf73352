"""Where the simulated cluster lives and how it is addressed. Nothing here is shared with the lab.

The control plane runs on loopback only, on ports away from the lab's (etcd 23791, API 10.99.0.1:6443),
with its own state directory; the lab's build cache is only read (its `kube` and `etcd` binaries).
Node and pod addresses are never dialed (KWOK nodes have no network): InternalIPs come from
198.18.0.0/15 (RFC 2544, reserved for benchmarks), pod and Service ranges do not overlap the lab's.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("SIM_STATE", "/var/lib/netconform-sim"))
CACHE = Path(os.environ.get("SIM_CACHE", "/var/cache/netconform-sim"))  # the KWOK binary
LAB_CACHE = Path(os.environ.get("LAB_CACHE", "/var/cache/netconform-lab"))  # read only: kube, etcd
KUBECONFIG = STATE / "kubeconfig"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
CERTS = STATE / "certs"
SIZE_FILE = STATE / "nodes"  # the node count asked for by the last `up`

ETCD_CLIENT = "127.0.0.1:23891"
ETCD_PEER = "127.0.0.1:23892"
API_HOST = "127.0.0.1"
API_PORT = 6553
ADVERTISE_IP = "198.18.0.1"  # what the API server advertises (it may not be loopback); never dialed
CM_PORT = 31357  # controller-manager / scheduler secure ports on 127.0.0.1
SCHED_PORT = 31359
SERVICE_CIDR = "10.112.0.0/16"
POD_CIDR = "10.128.0.0/10"  # node i: 10.(128 + i // 256).(i % 256).0/24
MAX_NODES = 5000

KWOK_MODULE = "sigs.k8s.io/kwok/cmd/kwok"
KWOK_VERSION = "v0.8.0"
KWOK_BIN = CACHE / f"kwok-{KWOK_VERSION}" / "kwok"

NODE_PREFIX = "sim-node-"
ZONES = ("sim-zone-a", "sim-zone-b", "sim-zone-c")
# heartbeat: each node's status renewed every 60-120 s, the controller-manager waits 300 s before
# calling a node NotReady: at 1000 nodes ~11 status writes per second instead of ~30 (KWOK's 20-45 s)
HEARTBEAT_MS, HEARTBEAT_JITTER_MS = 60_000, 60_000
NODE_MONITOR_GRACE = "300s"
# every component's client: the defaults (20 QPS) would make 2000 DaemonSet pods take minutes
API_QPS, API_BURST = "500", "1000"

COMPONENTS = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


def node_name(i: int) -> str:
    return f"{NODE_PREFIX}{i:04d}"


def node_index(name: str) -> int:
    return int(name[len(NODE_PREFIX) :])


def node_ip(i: int) -> str:
    """198.18.0.0/15: node 1 is 198.18.0.11, node 1000 is 198.18.3.242 (RFC 2544 benchmark range)."""
    n = i + 10
    return f"198.{18 + n // 65536}.{(n // 256) % 256}.{n % 256}"


def pod_cidr(i: int) -> str:
    return f"10.{128 + i // 256}.{i % 256}.0/24"
