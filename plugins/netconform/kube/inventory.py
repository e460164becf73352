"""The nodes: what netconform knows of each (`NodeInfo`), which ones a run uses, who owns an address."""

from __future__ import annotations

import functools
import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from kubernetes import client as k8s

from netconform.errors import UsageError, api_error_sentence
from netconform.kube.connect import get_json

__all__ = [
    "FAMILIES",
    "FLANNEL_BACKEND_DATA",
    "FLANNEL_PUBLIC_IP",
    "NodeInfo",
    "cluster_families",
    "explain_no_nodes",
    "family_of",
    "left_out",
    "left_out_lines",
    "list_nodes",
    "ownership_of",
    "select_nodes",
]

FLANNEL_BACKEND_DATA = "flannel.alpha.coreos.com/backend-data"
FLANNEL_PUBLIC_IP = "flannel.alpha.coreos.com/public-ip"

# The IP families a check can run over, in the order tests are generated (and ids name them).
FAMILIES = ("ipv4", "ipv6")


@functools.lru_cache(maxsize=1 << 16)  # asked per node and test function while collecting: 22,000 times at 1000 nodes
def family_of(address: str) -> str | None:
    """`10.244.1.5` or `10.244.0.0/16` -> "ipv4", `fd00::5` -> "ipv6", anything else -> None."""
    try:
        return f"ipv{ipaddress.ip_network(address, strict=False).version}"
    except ValueError:
        return None


@dataclass(frozen=True)
class NodeInfo:
    name: str
    internal_ip: str  # the first InternalIP (the primary family's)
    pod_cidrs: tuple[str, ...]
    ready: bool
    schedulable: bool
    kernel: str = ""
    os_image: str = ""
    kubelet_version: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    internal_ips: tuple[str, ...] = ()  # every InternalIP (one per family on a dual-stack node)
    not_ready: str = ""  # when not Ready: since when and why, from its Ready condition

    def ip_of(self, family: str) -> str | None:
        """This node's InternalIP of `family` ("ipv4" | "ipv6"), if it has one."""
        return next((ip for ip in self.internal_ips or (self.internal_ip,) if family_of(ip) == family), None)

    @property
    def families(self) -> tuple[str, ...]:
        """The IP families of this node's pods (its podCIDRs), in FAMILIES order."""
        found = {family_of(c) for c in self.pod_cidrs}
        return tuple(f for f in FAMILIES if f in found)

    @property
    def flannel_vtep_mac(self) -> str | None:
        """The flannel.1 MAC this node announces (VXLAN backend), from its annotation."""
        raw = self.annotations.get(FLANNEL_BACKEND_DATA)
        try:
            mac = json.loads(raw).get("VtepMAC") if raw else None
        except (ValueError, AttributeError, RecursionError):  # an annotation anyone with node patch can write
            return None
        return str(mac) if mac else None

    @property
    def flannel_public_ip(self) -> str | None:
        return self.annotations.get(FLANNEL_PUBLIC_IP)

    @classmethod
    def from_json(cls, node: dict[str, Any]) -> NodeInfo:
        """From a Node as the API sends it (JSON, camelCase)."""
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
        addresses: dict[str, str] = {}
        for a in status.get("addresses") or []:
            addresses.setdefault(a["type"], a["address"])  # the first of a type: the primary family's
        internal = tuple(a["address"] for a in status.get("addresses") or [] if a["type"] == "InternalIP")
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        cidrs = tuple(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
        info = status.get("nodeInfo") or {}
        return cls(
            name=meta.get("name", ""),
            internal_ip=addresses.get("InternalIP", ""),
            pod_cidrs=cidrs,
            ready=conditions.get("Ready") == "True",
            schedulable=not spec.get("unschedulable"),
            kernel=info.get("kernelVersion", ""),
            os_image=info.get("osImage", ""),
            kubelet_version=info.get("kubeletVersion", ""),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            internal_ips=internal,
            not_ready="" if conditions.get("Ready") == "True" else _not_ready_words(ready),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeInfo:
        return cls(
            **{**data, "pod_cidrs": tuple(data["pod_cidrs"]), "internal_ips": tuple(data.get("internal_ips", ()))}
        )


def cluster_families(nodes: list[NodeInfo]) -> list[str]:
    """The IP families the checks run over: those of the nodes' podCIDRs; without podCIDRs (a CNI that
    allocates elsewhere) those of their InternalIPs; IPv4 if neither says anything."""
    found = {f for n in nodes for f in n.families}
    if not found:
        found = {fam for n in nodes for ip in n.internal_ips or (n.internal_ip,) if (fam := family_of(ip))}
    return [f for f in FAMILIES if f in found] or ["ipv4"]


def list_nodes(api: k8s.ApiClient, label_selector: str | None = None) -> list[NodeInfo]:
    """Every node (or those matching the selector), sorted by name; UsageError with one sentence."""
    try:
        items = get_json(api, "/api/v1/nodes", {"labelSelector": label_selector or ""})["items"]
    except k8s.ApiException as exc:
        if exc.status == 400 and label_selector:
            raise UsageError(f"--node-selector {label_selector!r} is not a valid label selector") from None
        raise UsageError(api_error_sentence(exc, "list nodes")) from None
    return sorted((NodeInfo.from_json(n) for n in items), key=lambda n: n.name)


def _not_ready_words(condition: dict[str, Any] | None) -> str:
    """`NotReady since 2026-12-03T13:01:22Z (NodeStatusUnknown: Kubelet stopped posting node status.)`."""
    if not condition:
        return "NotReady (no Ready condition reported)"
    status = {"False": "NotReady", "Unknown": "Ready Unknown"}.get(str(condition.get("status")), "NotReady")
    since = f" since {condition['lastTransitionTime']}" if condition.get("lastTransitionTime") else ""
    why = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
    why = " ".join(why.split())  # the API's text, on one line
    return f"{status}{since}" + (f" ({why[:160]})" if why else "")


def left_out(
    all_nodes: list[NodeInfo],
    chosen: list[NodeInfo],
    selector: str | None,
    matching: list[str] | None,
    limit: int | None,
) -> dict[str, str]:
    """Each node the run does not test, and why, in the order select_nodes decides it."""
    taken = {n.name for n in chosen}
    out: dict[str, str] = {}
    for n in all_nodes:
        if n.name in taken:
            continue
        if matching is not None and n.name not in matching:  # not asked for, whatever its state
            out[n.name] = f"does not match --node-selector {selector!r}"
            continue
        why = [n.not_ready or "NotReady"] if not n.ready else []
        if not n.schedulable:
            why.append("cordoned (spec.unschedulable)")
        out[n.name] = "; ".join(why) or f"beyond --node-limit {limit}"
    return out


def left_out_lines(left: dict[str, str], per_reason: int = 5) -> list[str]:
    """The header's account of the nodes left out: NotReady ones one by one (each has its own time and
    reason, first 10), the others grouped by reason with a few names each (a --node-limit of 10 on
    1000 nodes is one line, not 990)."""
    if not left:
        return []
    own = [(name, why) for name, why in left.items() if why.startswith(("NotReady", "Ready Unknown"))]
    lines = [f"{name}: {why}" for name, why in own[:10]]
    if len(own) > 10:
        lines.append(f"... and {len(own) - 10} more not Ready")
    groups: dict[str, list[str]] = {}
    for name, why in left.items():
        if not why.startswith(("NotReady", "Ready Unknown")):
            groups.setdefault(why, []).append(name)
    for why, names in groups.items():
        shown = ", ".join(names[:per_reason]) + (
            f" and {len(names) - per_reason} more" if len(names) > per_reason else ""
        )
        lines.append(f"{why}: {shown}")
    return lines


def select_nodes(all_nodes: list[NodeInfo], matching: list[str] | None, limit: int | None) -> list[NodeInfo]:
    """Schedulable Ready nodes, optionally only those matching the selector, the first `limit` by name."""
    chosen = [n for n in all_nodes if n.ready and n.schedulable and (matching is None or n.name in matching)]
    return chosen[:limit] if limit else chosen


def explain_no_nodes(all_nodes: list[NodeInfo], selector: str | None) -> str:
    if not all_nodes:
        return "the cluster has no nodes"
    if selector:
        return f"no schedulable Ready node matches --node-selector {selector!r}"
    states = ", ".join(f"{n.name} ({'cordoned' if not n.schedulable else 'NotReady'})" for n in all_nodes[:10])
    return f"no node is both Ready and schedulable: {states}"


def ownership_of(ip: str, nodes: list[NodeInfo]) -> str | None:
    """Name the node that owns `ip` and in which role, the way an operator would look for it.

    A source IP seen in place of a pod IP is almost always a node's own address: its InternalIP,
    the `.0` of its podCIDR (flannel.1 in VXLAN mode) or the `.1` (the cni0 bridge).
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    for node in nodes:
        if node.internal_ip == ip:
            return f"{node.name}'s InternalIP"
    for node in nodes:
        for cidr in node.pod_cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            if addr.version != net.version:
                continue
            if addr == net.network_address:
                return f"{node.name}'s flannel.1 address (.0 of its podCIDR {cidr})"
            if addr == net.network_address + 1:
                return f"{node.name}'s cni0 bridge address (.1 of its podCIDR {cidr})"
            if addr in net:
                return f"a pod address on {node.name} (podCIDR {cidr})"
    return None
