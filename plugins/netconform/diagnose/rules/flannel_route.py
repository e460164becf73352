"""A peer's podCIDR has no route the backend needs (flanneld not running / no podCIDR / lost state).

vxlan: via flannel.1 (IPv4) and flannel-v6.1 (IPv6); host-gw (routed, no overlay): via the peer's
node address of the same family."""

from __future__ import annotations

import ipaddress

from ..datapath import datapath
from ..evidence import ClusterEvidence, NodeEvidence
from ..facts import NodeFacts
from ..model import Finding, scope
from ..parsers import Route
from ._rule import FLANNEL, Rule
from ._util import inspected

CAUSE = "missing-flannel-route"


def rule(ev: ClusterEvidence) -> list[Finding]:
    backend = datapath(ev).backend
    if backend == "host-gw":
        return _host_gw(ev)
    if backend == "vxlan":
        return _vxlan(ev)
    return []


def _v6(cidr: str) -> bool:
    return ipaddress.ip_network(cidr, strict=False).version == 6


def _routes(ne: NodeEvidence, cidr: str) -> list[Route]:
    table = ne.routes6 if _v6(cidr) else ne.routes
    want = ipaddress.ip_network(cidr, strict=False)
    out = []
    for r in table:
        try:
            if r.dst != "default" and ipaddress.ip_network(r.dst, strict=False) == want:
                out.append(r)
        except ValueError:
            continue
    return out


def _read(ne: NodeEvidence, cidr: str) -> bool:
    return ne.has("route6" if _v6(cidr) else "route")


def _peer_ip(peer: NodeFacts, cidr: str) -> str | None:
    if _v6(cidr):
        return peer.internal_ip_v6
    return peer.public_ip or peer.internal_ip


def _host_gw(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        for peer in ev.peers(ne.node):
            for cidr in peer.pod_cidrs:
                via = _peer_ip(peer, cidr)
                if not via or not _read(ne, cidr):
                    continue
                routes = _routes(ne, cidr)
                if any(r.via == via for r in routes):
                    continue
                cmd = "ip -6 route" if _v6(cidr) else "ip route"
                shown = routes[0].raw if routes else f"(no route for {cidr})"
                out.append(
                    Finding(
                        cause=CAUSE,
                        title=f"{ne.node} has no route to {peer.name}'s pods ({cidr}) via {peer.name}'s node address {via}",
                        confidence=0.9,
                        node=ne.node,
                        evidence=(
                            f"{ne.node}$ {cmd} show: {shown}",
                            f"{peer.name} spec.podCIDRs: {', '.join(peer.pod_cidrs)}; node address {via}",
                        )
                        + _subnet_env_evidence(ne),
                        fix=f"on {ne.node}: {cmd} {'replace' if routes else 'add'} {cidr} via {via}; "
                        "then restart flanneld there so it re-syncs (host-gw backend)",
                        explains=(scope(pairs=[(ne.node, peer.name)], cross_node=True, overlay_only=True),),
                    )
                )
    return out


def _vxlan(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        if not ne.has("route") or not ne.has("link"):
            continue
        if "flannel.1" not in ne.links:
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"{ne.node} has no flannel.1 interface",
                    confidence=0.9,
                    node=ne.node,
                    evidence=(f"{ne.node}$ ip -d link show: (no flannel.1)",) + _subnet_env_evidence(ne),
                    fix=f"on {ne.node}: start flanneld (check its logs, --iface and the node's spec.podCIDR)",
                    explains=(scope(nodes=[ne.node], cross_node=True),),
                )
            )
            continue
        for peer in ev.peers(ne.node):
            cidr = peer.pod_cidr
            if cidr:
                f = _vxlan_v4(ne, peer, cidr)
                if f:
                    out.append(f)
            v6 = "flannel-v6.1"
            for c6 in peer.pod_cidrs_v6:
                if v6 not in ne.links or not ne.has("route6"):
                    continue
                routes = _routes(ne, c6)
                if any(r.dev == v6 for r in routes):
                    continue
                out.append(
                    Finding(
                        cause=CAUSE,
                        title=f"{ne.node} has no route to {peer.name}'s pods ({c6}) via {v6}",
                        confidence=0.9,
                        node=ne.node,
                        evidence=(
                            f"{ne.node}$ ip -6 route show: " + (routes[0].raw if routes else f"(no route for {c6})"),
                            f"{peer.name} spec.podCIDRs: {', '.join(peer.pod_cidrs)}",
                        ),
                        fix=f"on {ne.node}: restart flanneld (it re-adds the {v6} routes)",
                        explains=(scope(pairs=[(ne.node, peer.name)], cross_node=True, overlay_only=True),),
                    )
                )
    return out


def _vxlan_v4(ne: NodeEvidence, peer: NodeFacts, cidr: str) -> Finding | None:
    routes = [r for r in ne.routes if r.dst == cidr]
    if any(r.dev == "flannel.1" for r in routes):
        return None
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
    return Finding(
        cause=CAUSE,
        title=f"{ne.node} has no route to {peer.name}'s pods ({cidr}) via flannel.1",
        confidence=0.9,
        node=ne.node,
        evidence=tuple(ev_lines),
        fix=f"on {ne.node}: restart flanneld; by hand: ip route replace {cidr} via {peer.subnet_gw} dev flannel.1 onlink"
        + (
            f" && ip neigh replace {peer.subnet_gw} lladdr {peer.vtep_mac} dev flannel.1 nud permanent"
            if peer.vtep_mac
            else ""
        ),
        explains=(scope(pairs=[(ne.node, peer.name)], cross_node=True, overlay_only=True),),
    )


def _subnet_env_evidence(ne: NodeEvidence) -> tuple[str, ...]:
    s = ne.sections.get("subnet_env")
    if s is not None and not s.ok:
        return (f"{ne.node}$ cat /run/flannel/subnet.env: {s.text.strip()}",)
    return ()


RULE = Rule(cause=CAUSE, applies=FLANNEL, category="Missing flannel route to a peer's podCIDR", run=rule)
