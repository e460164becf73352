"""Stale FDB: the peer's VtepMAC forwards to an address that is not the peer's public-ip, or has no entry."""

from __future__ import annotations

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._rule import FLANNEL_VXLAN, Rule
from ._util import inspected, node_ip

CAUSE = "stale-flannel-fdb"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        if not ne.has("fdb_flannel") or "flannel.1" not in ne.links:
            continue
        for peer in ev.peers(ne.node):
            mac, want = peer.vtep_mac, node_ip(peer)
            if not mac or not want:
                continue
            entries = [f for f in ne.fdb if f.mac == mac]
            annot = f"{peer.name} annotation flannel.alpha.coreos.com/public-ip: {peer.public_ip or '(absent)'}; VtepMAC {mac}"
            fix = (
                f"on {ne.node}: bridge fdb replace {mac} dev flannel.1 dst {want} self permanent; "
                f"check flanneld --iface / public-ip on {peer.name}"
            )
            sc = (scope(pairs=[(ne.node, peer.name)], cross_node=True, overlay_only=True),)
            wrong = [f for f in entries if f.dst and f.dst != want]
            if wrong and not any(f.dst == want for f in entries):
                out.append(
                    Finding(
                        cause=CAUSE,
                        title=f"{ne.node} sends VXLAN for {peer.name} ({mac}) to {wrong[0].dst}, not {want}",
                        confidence=0.9,
                        node=ne.node,
                        evidence=tuple(f"{ne.node}$ bridge fdb show dev flannel.1: {f.raw}" for f in wrong) + (annot,),
                        fix=fix,
                        explains=sc,
                    )
                )
            elif not entries:
                # missing FDB alone; when the route/neighbour are missing too, flannel_route reports it
                has_route = any(r.dst == peer.pod_cidr for r in ne.routes)
                has_neigh = any(n.ip == peer.subnet_gw and n.mac == mac for n in ne.neigh)
                if has_route and has_neigh:
                    out.append(
                        Finding(
                            cause=CAUSE,
                            title=f"{ne.node} has no FDB entry for {peer.name}'s VtepMAC {mac}",
                            confidence=0.85,
                            node=ne.node,
                            evidence=(f"{ne.node}$ bridge fdb show dev flannel.1: (no line for {mac})", annot),
                            fix=fix,
                            explains=sc,
                        )
                    )
    return out


RULE = Rule(
    cause=CAUSE, applies=FLANNEL_VXLAN, category="Stale flannel FDB entry (VXLAN frames to the wrong node)", run=rule
)
