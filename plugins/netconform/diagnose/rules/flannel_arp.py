"""Seed 1: flannel.1 neighbour entry for a peer's `<subnet>.0` holds a MAC that is not the peer's VtepMAC.

With a matching stale FDB entry the frames reach the peer and vanish without a
drop counter anywhere: only comparing MACs reveals it. Dual-stack: flannel-v6.1's neighbour for the
peer's IPv6 subnet address against its backend-v6-data VtepMAC, the same way.
"""

from __future__ import annotations

from ..evidence import ClusterEvidence, NodeEvidence
from ..facts import NodeFacts
from ..model import Finding, scope
from ..parsers import FdbEntry, Neigh
from ._rule import FLANNEL_VXLAN, Rule
from ._util import inspected

CAUSE = "stale-flannel-arp"
V6_DEV = "flannel-v6.1"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    owners = {n.vtep_mac: n.name for n in ev.facts.nodes.values() if n.vtep_mac}
    owners.update({n.vtep_mac_v6: n.name for n in ev.facts.nodes.values() if n.vtep_mac_v6})
    for ne, _ in inspected(ev):
        for peer in ev.peers(ne.node):
            if ne.has("neigh_flannel"):
                out += _stale(ne, peer, "flannel.1", peer.subnet_gw, peer.vtep_mac, ne.neigh, ne.fdb, owners)
            if ne.has("neigh") and peer.vtep_mac_v6:
                v6 = [n for n in ne.neigh_all if n.dev == V6_DEV]
                out += _stale(ne, peer, V6_DEV, peer.subnet_gw_v6, peer.vtep_mac_v6, v6, [], owners)
    return out


def _stale(
    ne: NodeEvidence,
    peer: NodeFacts,
    dev: str,
    gw: str | None,
    want: str | None,
    entries: list[Neigh],
    fdb: list[FdbEntry],
    owners: dict[str, str],
) -> list[Finding]:
    out: list[Finding] = []
    if not gw or not want:
        return out
    v6 = dev == V6_DEV
    for n in entries:
        if n.ip != gw or n.mac is None or n.mac == want:
            continue
        owner = owners.get(n.mac)
        whose = f"belongs to {owner}" if owner else f"belongs to no current node (a {dev} that was re-created)"
        annotation = "backend-v6-data" if v6 else "backend-data"
        evidence = [
            f"{ne.node}$ ip neigh show{'' if v6 else ' dev flannel.1'}: {n.raw}",
            f"{peer.name} annotation flannel.alpha.coreos.com/{annotation}: "
            + (f'{{"VtepMAC":"{want}"}}' if v6 else peer.backend_data),
        ]
        stale_fdb = [f for f in fdb if f.mac == n.mac]
        evidence += [f"{ne.node}$ bridge fdb show dev {dev}: {f.raw}" for f in stale_fdb]
        fix = f"on {ne.node}: ip {'-6 ' if v6 else ''}neigh replace {gw} lladdr {want} dev {dev} nud permanent"
        if stale_fdb:
            fix += f" && bridge fdb del {n.mac} dev {dev}"
        if not v6 and not any(f.mac == want for f in fdb) and (peer.public_ip or peer.internal_ip):
            fix += f" && bridge fdb append {want} dev {dev} dst {peer.public_ip or peer.internal_ip} self permanent"
        fix += "; then restart flanneld there so it re-syncs"
        out.append(
            Finding(
                cause=CAUSE,
                title=f"{ne.node} has a stale {'neighbour' if v6 else 'ARP'} entry for {peer.name}'s {dev}: {gw} -> {n.mac} "
                f"(expected {want}, owned by {peer.name}; {n.mac} {whose})",
                confidence=0.95,
                node=ne.node,
                evidence=tuple(evidence),
                fix=fix,
                # flannel.1 carries IPv4 pod traffic only, flannel-v6.1 IPv6 only
                explains=(
                    scope(pairs=[(ne.node, peer.name)], cross_node=True, overlay_only=True, families=[6 if v6 else 4]),
                ),
                detail="overlay traffic between the two nodes is dropped in both directions "
                "(replies go through the stale entry)",
            )
        )
    return out


RULE = Rule(cause=CAUSE, applies=FLANNEL_VXLAN, category="Stale flannel ARP entry (overlay to a node broken)", run=rule)
