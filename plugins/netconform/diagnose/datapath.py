"""Which datapath the cluster runs, from what was read: kube-proxy's mode, flannel's backend, Cilium's mode.

Rules judge only what they know: kube-proxy's iptables and nftables modes, flannel's vxlan and
host-gw backends. Anything else (kube-proxy replaced by Cilium or Calico eBPF, IPVS mode, another
overlay) is named once as not covered (`not_covered`), and the rules that need it stay silent:
a missing KUBE-SERVICES chain on a Cilium node is not a cause.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .evidence import ClusterEvidence, NodeEvidence
from .model import NOTHING, Finding

__all__ = ["COVERED_BACKENDS", "COVERED_PROXY", "Datapath", "cilium_mode", "datapath", "not_covered", "proxy_mode_of"]

COVERED_PROXY = ("iptables", "nftables")
COVERED_BACKENDS = ("vxlan", "host-gw")
NOT_COVERED_CAUSE = "not-covered"

# interface name (or prefix) -> the datapath it belongs to; none of them is judged by the rules
_FOREIGN_LINKS = (
    ("cilium_host", "Cilium"),
    ("cilium_vxlan", "Cilium"),
    ("vxlan.calico", "Calico VXLAN"),
    ("tunl0", "Calico IPIP"),
    ("bpf.cali", "Calico eBPF"),
    ("weave", "Weave Net"),
    ("antrea-gw0", "Antrea"),
    ("ovn-k8s-mp0", "OVN-Kubernetes"),
    ("genev_sys_6081", "Geneve (OVN/Antrea)"),
    ("kube-ipvs0", "kube-proxy IPVS mode"),
)
# Cilium's tunnel device -> its tunnel mode; cilium_host with neither is native routing
_CILIUM_TUNNELS = (("cilium_vxlan", "vxlan tunnel"), ("cilium_geneve", "geneve tunnel"))


@dataclass(frozen=True)
class Datapath:
    proxy: str | None  # "iptables" | "nftables" | "ipvs" | None: no kube-proxy seen
    proxy_source: str  # where the mode was read ("ConfigMap kube-system/kube-proxy", "node rules", "")
    backend: str | None  # "vxlan" | "host-gw" | None: not flannel's, or unknown
    backend_source: str
    foreign: tuple[str, ...] = ()  # datapaths seen that no rule judges ("Calico on lab-node-1", ...)
    cilium: str | None = None  # Cilium's mode where it runs: "vxlan tunnel", "geneve tunnel", "native routing"

    @property
    def proxy_covered(self) -> bool:
        return self.proxy in COVERED_PROXY

    @property
    def backend_covered(self) -> bool:
        return self.backend in COVERED_BACKENDS


def proxy_mode_of(ne: NodeEvidence) -> str | None:
    """The kube-proxy mode a node's own rules show (None: no kube-proxy rules there)."""
    if ne.has("nft") and ne.nft.has_kube_proxy and any(t.maps or t.chains for t in ne.nft.kube_proxy.values()):
        return "nftables"
    if ne.has("iptables") and "KUBE-SERVICES" in ne.tables.get("nat", {}):
        return "iptables"
    if "kube-ipvs0" in ne.links:
        return "ipvs"
    return None


def _foreign(ne: NodeEvidence) -> list[str]:
    found = []
    for prefix, what in _FOREIGN_LINKS:
        # tunl0 exists wherever the ipip module is loaded: only an UP one is someone's datapath
        if any(
            (name == prefix or name.startswith(prefix)) and (link.up or prefix != "tunl0")
            for name, link in ne.links.items()
        ):
            found.append(what)
    if any(name.startswith("cali") and name != "cali" for name in ne.links) and not any(
        w.startswith("Calico") for w in found
    ):
        found.append("Calico")
    if any(name.startswith("lxc") for name in ne.links) and "Cilium" not in found:
        found.append("Cilium")
    return sorted(set(found))


def cilium_mode(nodes: list[NodeEvidence]) -> str | None:
    """Cilium's mode from its devices on the nodes (None: no cilium_host anywhere)."""
    with_cilium = [ne for ne in nodes if "cilium_host" in ne.links]
    if not with_cilium:
        return None
    modes = Counter(
        next((mode for device, mode in _CILIUM_TUNNELS if device in ne.links), "native routing") for ne in with_cilium
    )
    return modes.most_common(1)[0][0]


def datapath(ev: ClusterEvidence) -> Datapath:
    """The cluster's datapath: the ConfigMap's mode when readable, else what most inspected nodes show."""
    nodes = [ne for ne in ev.nodes.values() if ne.error is None]
    cilium = cilium_mode(nodes)
    foreign: list[str] = []
    for ne in nodes:  # Cilium, named by its mode, is not foreign again per node
        foreign += [f"{w} on {ne.node}" for w in _foreign(ne) if not (cilium and w == "Cilium")]
    modes = Counter(m for ne in nodes if (m := proxy_mode_of(ne)))
    if ev.facts.proxy_mode:
        proxy: str | None = ev.facts.proxy_mode
        proxy_source = "ConfigMap kube-system/kube-proxy"
    elif modes:
        proxy, proxy_source = modes.most_common(1)[0][0], "node rules"
    else:
        proxy, proxy_source = None, ""
    types = Counter(n.backend_type for n in ev.facts.nodes.values() if n.backend_type)
    backend: str | None
    if types:
        backend, backend_source = types.most_common(1)[0][0], "node annotations flannel.alpha.coreos.com/backend-type"
    elif any("flannel.1" in ne.links for ne in nodes):
        backend, backend_source = "vxlan", "flannel.1 on the nodes"
    elif any(ne.subnet_env for ne in nodes):
        # flannel runs (subnet.env) without a VXLAN device: the routed backend, when peers are routed via nodes
        backend, backend_source = ("host-gw", "routes via the peers' node IPs") if _routed(ev) else (None, "")
    else:
        backend, backend_source = None, ""
    return Datapath(proxy, proxy_source, backend, backend_source, tuple(sorted(set(foreign))), cilium)


def _routed(ev: ClusterEvidence) -> bool:
    for ne in ev.nodes.values():
        for peer in ev.peers(ne.node):
            if peer.pod_cidr and any(r.dst == peer.pod_cidr and r.via == peer.internal_ip for r in ne.routes):
                return True
    return False


def not_covered(ev: ClusterEvidence, dp: Datapath) -> list[Finding]:
    """One note naming what the rules do not judge (nothing when everything is covered)."""
    parts = []
    read = [ne for ne in ev.nodes.values() if ne.error is None]
    if not read:
        return []  # nothing was read: that is an inspection gap (said elsewhere), not a datapath
    if not dp.proxy_covered and not (dp.proxy is None and dp.cilium):  # Cilium's replacement: said below
        if dp.proxy is None:
            parts.append(
                "Service rules: no kube-proxy rules on any node inspected (kube-proxy replaced, e.g. Cilium or "
                "Calico eBPF?): kube-proxy rules are not judged"
            )
        else:
            parts.append(f"kube-proxy mode {dp.proxy} ({dp.proxy_source}): its rules are not judged")
    if dp.cilium:
        kept = (
            f"kube-proxy kept, {dp.proxy} mode"
            if dp.proxy
            else "kube-proxy replaced (no kube-proxy rules on any node inspected): Service rules are not judged"
        )
        parts.append(
            f"Cilium ({dp.cilium}, {kept}): Cilium's own datapath (endpoints, ipcache, tunnel map, policy verdicts) "
            "is not judged yet; flannel's rules do not run"
        )
    elif not dp.backend_covered:
        what = f"flannel backend {dp.backend}" if dp.backend else "a pod network that is not flannel vxlan/host-gw"
        parts.append(f"{what}: overlay neighbours, FDB, routes and MTU are not judged")
    if dp.foreign:
        parts.append("seen: " + ", ".join(dp.foreign))
    if not parts:
        return []
    return [
        Finding(
            cause=NOT_COVERED_CAUSE,
            title="not covered: " + "; ".join(parts),
            confidence=0.0,
            node=None,
            evidence=(),
            fix="",
            explains=(NOTHING,),
        )
    ]
