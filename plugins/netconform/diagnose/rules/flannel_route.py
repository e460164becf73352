"""A peer's podCIDR has no route on flannel.1 (flanneld not running / no podCIDR / lost state)."""

from __future__ import annotations

from ..evidence import ClusterEvidence, NodeEvidence
from ..model import Finding, scope
from ._util import inspected

CAUSE = "missing-flannel-route"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        if not ne.has("route") or not ne.has("link"):
            continue
        if "flannel.1" not in ne.links:
            out.append(
                Finding(
                    CAUSE,
                    f"{ne.node} has no flannel.1 interface",
                    0.9,
                    ne.node,
                    (f"{ne.node}$ ip -d link show: (no flannel.1)",) + _subnet_env_evidence(ne),
                    f"on {ne.node}: start flanneld (check its logs, --iface and the node's spec.podCIDR)",
                    (scope(nodes=[ne.node], cross_node=True),),
                )
            )
            continue
        for peer in ev.peers(ne.node):
            cidr = peer.pod_cidr
            if not cidr:
                continue
            routes = [r for r in ne.routes if r.dst == cidr]
            if any(r.dev == "flannel.1" for r in routes):
                continue
            ev_lines = [
                f"{ne.node}$ ip route show: " + (routes[0].raw if routes else f"(no route for {cidr})"),
                f"{peer.name} spec.podCIDR: {cidr}",
            ]
            neigh = [n for n in ne.neigh if n.ip == peer.subnet_gw]
            if not neigh:
                ev_lines.append(f"{ne.node}$ ip neigh show dev flannel.1: (no entry for {peer.subnet_gw})")
            if peer.vtep_mac and not any(f.mac == peer.vtep_mac for f in ne.fdb):
                ev_lines.append(f"{ne.node}$ bridge fdb show dev flannel.1: (no entry for {peer.vtep_mac})")
            ev_lines += _subnet_env_evidence(ne)
            out.append(
                Finding(
                    CAUSE,
                    f"{ne.node} has no route to {peer.name}'s pods ({cidr}) via flannel.1",
                    0.9,
                    ne.node,
                    tuple(ev_lines),
                    f"on {ne.node}: restart flanneld; by hand: ip route replace {cidr} via {peer.subnet_gw} dev flannel.1 onlink"
                    + (
                        f" && ip neigh replace {peer.subnet_gw} lladdr {peer.vtep_mac} dev flannel.1 nud permanent"
                        if peer.vtep_mac
                        else ""
                    ),
                    (scope(pairs=[(ne.node, peer.name)], cross_node=True, overlay_only=True),),
                )
            )
    return out


def _subnet_env_evidence(ne: NodeEvidence) -> tuple[str, ...]:
    s = ne.sections.get("subnet_env")
    if s is not None and not s.ok:
        return (f"{ne.node}$ cat /run/flannel/subnet.env: {s.text.strip()}",)
    return ()
