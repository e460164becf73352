"""Seed 1: flannel.1 neighbour entry for a peer's `<subnet>.0` holds a MAC that is not the peer's VtepMAC.

With a matching stale FDB entry the frames reach the peer and vanish without a
drop counter anywhere: only comparing MACs reveals it.
"""

from __future__ import annotations

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._util import inspected

CAUSE = "stale-flannel-arp"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    owners = {n.vtep_mac: n.name for n in ev.facts.nodes.values() if n.vtep_mac}
    for ne, _ in inspected(ev):
        if not ne.has("neigh_flannel"):
            continue
        for peer in ev.peers(ne.node):
            gw, want = peer.subnet_gw, peer.vtep_mac
            if not gw or not want:
                continue
            for n in ne.neigh:
                if n.ip != gw or n.mac is None or n.mac == want:
                    continue
                owner = owners.get(n.mac)
                whose = (
                    f"belongs to {owner}" if owner else "belongs to no current node (a flannel.1 that was re-created)"
                )
                evidence = [
                    f"{ne.node}$ ip neigh show dev flannel.1: {n.raw}",
                    f"{peer.name} annotation flannel.alpha.coreos.com/backend-data: {peer.backend_data}",
                ]
                stale_fdb = [f for f in ne.fdb if f.mac == n.mac]
                evidence += [f"{ne.node}$ bridge fdb show dev flannel.1: {f.raw}" for f in stale_fdb]
                fix = f"on {ne.node}: ip neigh replace {gw} lladdr {want} dev flannel.1 nud permanent"
                if stale_fdb:
                    fix += f" && bridge fdb del {n.mac} dev flannel.1"
                if not any(f.mac == want for f in ne.fdb) and (peer.public_ip or peer.internal_ip):
                    fix += f" && bridge fdb append {want} dev flannel.1 dst {peer.public_ip or peer.internal_ip} self permanent"
                fix += "; then restart flanneld there so it re-syncs"
                out.append(
                    Finding(
                        CAUSE,
                        f"{ne.node} has a stale ARP entry for {peer.name}'s flannel.1: {gw} -> {n.mac} "
                        f"(expected {want}, owned by {peer.name}; {n.mac} {whose})",
                        0.95,
                        ne.node,
                        tuple(evidence),
                        fix,
                        (scope(pairs=[(ne.node, peer.name)], cross_node=True, overlay_only=True),),
                        detail="overlay traffic between the two nodes is dropped in both directions "
                        "(replies go through the stale entry)",
                    )
                )
    return out
