"""Where the lab lives and how it is addressed. One place for every constant."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("LAB_STATE", "/var/lib/netconform-lab"))
CACHE = Path(os.environ.get("LAB_CACHE", "/var/cache/netconform-lab"))
KUBECONFIG = STATE / "kubeconfig"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
CERTS = STATE / "certs"

PREFIX = "nclab"  # names of netns, interfaces and cgroups start with it
CGROUP_ROOT = "netconform-lab"  # every lab process lives below this cgroup
SWITCH_NS = f"{PREFIX}-sw"
ROOT_VETH = f"{PREFIX}0"  # root end of the link to the lab switch

LAB_NET = "10.99.0"  # /24 for node uplinks; .1 is the control plane (root namespace)
LAB_CIDR = f"{LAB_NET}.0/24"
MAX_NODES = 12  # node N is 10.99.0.(10+N); 12 is the largest size measured (ci/LAB.md)
API_IP = f"{LAB_NET}.1"
API_PORT = 6443
ETCD_CLIENT = "127.0.0.1:23791"
ETCD_PEER = "127.0.0.1:23801"
CM_PORT = 31257  # controller-manager / scheduler secure ports on 127.0.0.1
SCHED_PORT = 31259
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
DNS_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
# The dual-stack variant's IPv6 ranges: unique local addresses, used by nothing outside the lab.
LAB_NET6 = "fd10:99::"  # /64 for node uplinks (node N: fd10:99::(10+N)); nclab0 has IPv6 disabled
LAB_CIDR6 = f"{LAB_NET6}/64"
POD_CIDR6 = "fd10:244::/56"  # a /64 per node
SERVICE_CIDR6 = "fd10:96::/112"
VARIANT_FILE = STATE / "variant.json"

# The references the suite pulls by default; the lab builds images with exactly these names.
IMAGES = {
    "probe": "ghcr.io/netconform/probe:0.1.0",
    "agent": "docker.io/nicolaka/netshoot:v0.13",
    "pause": "registry.k8s.io/pause:3.10",
    "coredns": "registry.k8s.io/coredns/coredns:v1.14.7",
}


def _versions() -> dict[str, str]:
    """ci/lab-build/versions.env: the upstream versions the lab builds."""
    found = {}
    for line in (REPO / "ci/lab-build/versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            found[key.strip()] = value.strip()
    return found


KUBE_VERSION = _versions()["KUBE_VERSION"]
# The Kubernetes components each part of the running lab was started with (control plane, each node's
# kubelet + kube-proxy): `ci/lab up --version` writes it, `ci/lab upgrade` updates it step by step.
VERSIONS_FILE = STATE / "versions.json"


def kube_versions() -> list[str]:
    """The Kubernetes versions the lab can build: versions.env's (ci/lab-build/kube) and each older one
    that has a wrapper module ci/lab-build/kube-<version>/ (built by ci/lab-build/build-kube.sh)."""
    found = {KUBE_VERSION} | {
        d.name.removeprefix("kube-") for d in (REPO / "ci/lab-build").glob("kube-v*") if (d / "go.mod").is_file()
    }
    return sorted(found, key=version_key)


def version_key(version: str) -> tuple[int, ...]:
    """v1.36.3 -> (1, 36, 3), for ordering versions."""
    return tuple(int(part) for part in version.removeprefix("v").split("."))


PROXY_MODES = ("iptables", "nftables")  # this kernel has no IPVS, so no ipvs mode
FLANNEL_BACKENDS = ("vxlan", "host-gw")
IP_FAMILIES = ("ipv4", "dual")
CNIS = ("flannel", "cilium")  # cilium: ci/lablib/cilium.py, built by ci/lab-build/build-cilium.sh


@dataclass(frozen=True)
class Variant:
    """The shape of a lab, chosen at `ci/lab up` and recorded in VARIANT_FILE (format: ci/LAB.md)."""

    nodes: int = 3
    proxy_mode: str = "iptables"
    flannel_backend: str = "vxlan"
    ip_family: str = "ipv4"
    version: str = KUBE_VERSION
    cni: str = "flannel"

    @property
    def dual(self) -> bool:
        return self.ip_family == "dual"

    @property
    def pod_cidrs(self) -> list[str]:
        return [POD_CIDR, POD_CIDR6] if self.dual else [POD_CIDR]

    @property
    def service_cidrs(self) -> list[str]:
        return [SERVICE_CIDR, SERVICE_CIDR6] if self.dual else [SERVICE_CIDR]

    @property
    def cilium(self) -> bool:
        return self.cni == "cilium"

    def describe(self) -> str:
        # Cilium tunnels with VXLAN (its routing-mode tunnel); flannel_backend is flannel's alone.
        datapath = "cilium vxlan" if self.cilium else f"flannel {self.flannel_backend}"
        return (
            f"{self.nodes} nodes, kube-proxy {self.proxy_mode}, {datapath}, {self.ip_family}, Kubernetes {self.version}"
        )

    def to_json(self) -> str:
        return json.dumps({"format": 1, **asdict(self)}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Variant:
        doc = json.loads(text)
        return cls(**{f.name: doc[f.name] for f in fields(cls) if f.name in doc})


def variant() -> Variant:
    """The variant of the lab that is up (or being brought up); the default when none is recorded."""
    if VARIANT_FILE.exists():
        return Variant.from_json(VARIANT_FILE.read_text())
    return Variant(nodes=node_count() or 3)


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
    def ip6(self) -> str:
        return f"{LAB_NET6}{10 + self.index}"

    def node_ips(self, var: Variant) -> list[str]:
        return [self.ip, self.ip6] if var.dual else [self.ip]

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
