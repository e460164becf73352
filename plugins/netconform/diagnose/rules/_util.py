"""Helpers shared by rules (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from ..dialseq import FIRST_OK, OK_ELSEWHERE
from ..evidence import ClusterEvidence, NodeEvidence
from ..facts import NodeFacts
from ..iptables import Rule


def inspected(ev: ClusterEvidence) -> list[tuple[NodeEvidence, NodeFacts | None]]:
    """Nodes we have evidence for (and could reach), with their API facts."""
    return [(ne, ev.facts.nodes.get(name)) for name, ne in sorted(ev.nodes.items()) if ne.error is None]


def overlay_pairs(ev: ClusterEvidence) -> Iterator[tuple[NodeEvidence, NodeFacts, NodeFacts, str, str]]:
    """(node evidence, its facts, a peer's facts, a pod IP here, a pod IP there) for every node whose
    iptables we read and every peer: the pod->pod packets that iptables rules are walked with."""
    for ne, nf in inspected(ev):
        if not ne.has("iptables") or nf is None:
            continue
        mine = host_in(nf.pod_cidr)
        for peer in ev.peers(ne.node):
            theirs = host_in(peer.pod_cidr)
            if mine and theirs:
                yield ne, nf, peer, mine, theirs


def host_in(cidr: str | None, n: int = 2) -> str | None:
    """A representative pod IP in a CIDR (.2: .0 is flannel.1, .1 is cni0)."""
    if not cidr:
        return None
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address + n) if net.num_addresses > n else None


def underlay(ne: NodeEvidence) -> tuple[str | None, str | None]:
    """(device, local IP) flannel.1 encapsulates over."""
    fl = ne.links.get("flannel.1")
    if fl is None:
        return None, None
    return fl.details.get("dev"), fl.details.get("local")


def device_of(ne: NodeEvidence, ip: str | None) -> str | None:
    """The node's interface that holds `ip` (its uplink, for the node's InternalIP)."""
    return next((dev for dev, cidrs in ne.addrs.items() if ip and any(c.split("/")[0] == ip for c in cidrs)), None)


def quote_rule(r: Rule) -> str:
    """A rule as iptables-save printed it, with its packet counter when known."""
    prefix = f"[{r.packets} pkts] " if r.packets is not None else ""
    tag = f" ({r.backend})" if r.backend == "legacy" else ""
    return f"{prefix}{r.raw}{tag}"


def node_ip(nf: NodeFacts | None) -> str | None:
    if nf is None:
        return None
    return nf.public_ip or nf.internal_ip


def pattern_evidence(ev: ClusterEvidence, node: str) -> tuple[list[str], bool]:
    """The dial patterns through `node` that per-source state explains, quoted (first-ok-then-timeouts first),
    and whether one is first-ok-then-timeouts (the one that raises a per-source cause's confidence)."""
    seen = [p for p in ev.patterns_through(node) if p.kind in (FIRST_OK, OK_ELSEWHERE)]
    seen.sort(key=lambda p: (not p.first_ok, p.src_node, p.host))
    return [f"dials: {p.quote()}" for p in seen], any(p.first_ok for p in seen)
