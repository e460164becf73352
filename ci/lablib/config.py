"""Where the lab lives and how it is addressed. One place for every constant."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("LAB_STATE", "/var/lib/netconform-lab"))
CACHE = Path(os.environ.get("LAB_CACHE", "/var/cache/netconform-lab"))
KUBECONFIG = STATE / "kubeconfig"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
CERTS = STATE / "certs"

PREFIX = "nclab"                 # names of netns, interfaces and cgroups start with it
CGROUP_ROOT = "netconform-lab"   # every lab process lives below this cgroup
SWITCH_NS = f"{PREFIX}-sw"
ROOT_VETH = f"{PREFIX}0"          # root end of the link to the lab switch

LAB_NET = "10.99.0"               # /24 for node uplinks; .1 is the control plane (root namespace)
API_IP = f"{LAB_NET}.1"
API_PORT = 6443
ETCD_CLIENT = "127.0.0.1:23791"
ETCD_PEER = "127.0.0.1:23801"
CM_PORT = 31257                   # controller-manager / scheduler secure ports on 127.0.0.1
SCHED_PORT = 31259
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
DNS_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"

# The references the suite pulls by default; the lab builds images with exactly these names.
IMAGES = {
    "probe": "ghcr.io/netconform/probe:0.1.0",
    "agent": "docker.io/nicolaka/netshoot:v0.13",
    "pause": "registry.k8s.io/pause:3.10",
    "coredns": "registry.k8s.io/coredns/coredns:v1.14.7",
}


@dataclass(frozen=True)
class Node:
    index: int

    @property
    def name(self) -> str:
        return f"lab-node-{self.index}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}-node-{self.index}"

    @property
    def ip(self) -> str:
        return f"{LAB_NET}.{10 + self.index}"

    @property
    def dir(self) -> Path:
        return STATE / "nodes" / self.name

    @property
    def cgroup(self) -> str:
        return f"{CGROUP_ROOT}/{self.name}"

    @property
    def containerd_sock(self) -> Path:
        return self.dir / "run-containerd" / "containerd.sock"


def nodes(count: int) -> list[Node]:
    return [Node(i) for i in range(1, count + 1)]


def node_count() -> int:
    """How many nodes the running lab has (0 when it is down)."""
    root = STATE / "nodes"
    return len(list(root.iterdir())) if root.is_dir() else 0
