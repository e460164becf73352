"""The network between nodes carries less than both nodes' uplinks: DF pings from a node to a peer's
address pass small and are lost at the size a full-size overlay packet makes (the VXLAN device's MTU plus
its encapsulation), while neither end's uplink is below that size (that is rules/mtu_uplink.py's) and the
sender's kernel did not refuse it itself (a route of its own with a smaller `mtu` is named as such, with
the route put back without it as the fix). The node that is an end of every such path is named (its link to
the network); when no one node is, the network as a whole. Evidence: the sizes lost and the largest that
passed, and whether an ICMP fragmentation-needed came back with the hop's MTU or nothing did (a black hole)."""

from __future__ import annotations

import ipaddress
import re

from netconform.checks import MTU

from ..evidence import ClusterEvidence, NodeEvidence
from ..model import Finding, scope
from ..parsers import Route
from ..pmtu import OVERLAY, PathProbe
from ._rule import FLANNEL_VXLAN, Rule
from ._util import inspected

CAUSE = "mtu-path-too-small"


def _uplink(ne: NodeEvidence | None, family: int) -> tuple[str, int] | None:
    """(the uplink under the node's VXLAN device of that family, its MTU), when read."""
    if ne is None:
        return None
    dev = ne.links.get(OVERLAY[family][0])
    up = ne.links.get(dev.details.get("dev", "")) if dev is not None else None
    return (up.name, up.mtu) if up is not None and up.mtu is not None else None


def rule(ev: ClusterEvidence) -> list[Finding]:
    by_ip = {ip: n.name for n in ev.facts.nodes.values() for ip in (n.internal_ip, n.internal_ip_v6) if ip}
    short: list[tuple[str, str, int, PathProbe, tuple[str, int]]] = []  # (from, to, family, probe, uplink)
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        for ip, name in sorted(by_ip.items()):
            family = 6 if ":" in ip else 4
            dev, mine = ne.links.get(OVERLAY[family][0]), _uplink(ne, family)
            if name == ne.node or dev is None or dev.mtu is None or mine is None:
                continue
            need = dev.mtu + OVERLAY[family][1]
            probe = ne.path_probes.get(ip)
            route = _route_with_mtu(ne, ip)
            if mine[1] >= need and route is not None and route[1] < need:
                out.append(_route_finding(ne.node, name, ip, need, route, mine, probe))
                continue  # read from the routes, with or without a ping that can set DF
            peer = _uplink(ev.nodes.get(name), family)
            if probe is None or not probe.short or mine[1] < probe.need or (peer is not None and peer[1] < probe.need):
                continue  # an end's own uplink is short: rules/mtu_uplink.py
            if probe.local and not probe.learned:
                continue  # refused by the sender's own kernel, with no route mtu of its own: nothing on the way
            short.append((ne.node, name, family, probe, mine))
    return _merge_route_findings(out) + ([_path_finding(short)] if short else [])


def _route_with_mtu(ne: NodeEvidence, peer: str) -> tuple[Route, int] | None:
    """The most specific route to `peer` with an `mtu` of its own (`ip route show` / `ip -6 route show`), and it."""
    addr = ipaddress.ip_address(peer)
    best: tuple[int, Route, int] | None = None
    for r in ne.routes6 if addr.version == 6 else ne.routes:
        try:
            net = ipaddress.ip_network(r.dst, strict=False)
        except ValueError:
            continue  # "default" and the like
        m = re.search(r"\smtu (?:lock )?(\d+)", " " + r.raw)
        if addr in net and m and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, r, int(m.group(1)))
    return (best[1], best[2]) if best else None


def _route_finding(
    node: str,
    peer: str,
    ip: str,
    need: int,
    found: tuple[Route, int],
    up: tuple[str, int],
    probe: PathProbe | None,
) -> Finding:
    route, mtu = found
    cmd = "ip " + ("-6 " if ":" in ip else "") + "route replace " + re.sub(r"\s+mtu (?:lock )?\d+", "", route.raw)
    evidence = [f"{node}$ ip route show: {route.raw}"]
    if probe is not None:
        evidence.append(f"{node}$ ip route get {ip}: {probe.route}")
        if probe.short:
            evidence.append(
                f"{node}$ ping -s {probe.need - _header(probe)} {ip} ({peer}): "
                + (probe.errors[0] if probe.errors else f"{probe.need}-byte packets refused")
                + f"; {SMALL_TEXT} pass"
            )
    return Finding(
        cause=CAUSE,
        title=f"{node}: its route to {peer} ({ip}) has mtu {mtu}, less than {up[0]}'s {up[1]}: full-size overlay "
        f"packets ({need} bytes with VXLAN) are refused on the way out",
        confidence=0.8,
        node=node,
        evidence=tuple(evidence),
        fix=f"on {node}: {cmd} (the same route without its mtu)",
        explains=(scope(checks=[MTU], src_nodes=[node]),),
        detail="small requests pass; only packets above the route's MTU are lost",
    )


def _merge_route_findings(found: list[Finding]) -> list[Finding]:
    """One finding per node and fix (a route to a whole subnet is met by every peer in it)."""
    seen: dict[tuple[str | None, str], Finding] = {}
    for f in found:
        seen.setdefault((f.node, f.fix), f)
    return list(seen.values())


def _header(probe: PathProbe) -> int:
    return OVERLAY[6 if ":" in probe.peer else 4][2]


def _path_finding(short: list[tuple[str, str, int, PathProbe, tuple[str, int]]]) -> Finding:
    ends = [{a, b} for a, b, *_ in short]
    common = set.intersection(*ends)
    node = sorted(common)[0] if len(common) == 1 or (common and len(short) == 1) else None
    largest = [p.largest for *_, p, _ in short if p.largest is not None]
    hop = [m for *_, p, _ in short for m in (p.icmp_mtu, p.route_mtu if p.learned else None) if m is not None]
    carry = min(hop) if hop else (min(largest) if largest else None)
    need = max(p.need for *_, p, _ in short)
    dev, overhead, _ = OVERLAY[short[0][2]]
    evidence = [
        f"{a}$ ping -M do -s {p.need - OVERLAY[f][2]} {p.peer} ({b}): {p.need}-byte packets lost, {SMALL_TEXT} pass"
        + (f"; the largest that passed {p.largest}" if p.largest is not None else "; none of the sizes below passed")
        + (
            f"; ICMP fragmentation-needed: {p.errors[0]}"
            if p.errors
            else f"; path MTU learned from an ICMP error: {p.route}"
            if p.learned
            else "; no ICMP fragmentation-needed came back (a silent drop)"
        )
        + f"; {up[0]} mtu {up[1]} on this end"
        for a, b, f, p, up in short
    ]
    where = f"{node}'s link to the network (its switch port, or a hop on every path to it)" if node else "the network"
    carried = f"carries {carry} bytes" if carry else "carries less"
    fix = (
        f"raise the MTU of {where} to >= {need} (what {dev} mtu {need - overhead} + {overhead} of VXLAN needs; "
        f"it now {carried}, under both ends' uplink MTU); else lower the overlay on every node to what it carries"
        + (
            f': flannel net-conf.json "Backend": {{"Type": "vxlan", "MTU": {carry}}} '
            f"(flannel.1 and the pods become {carry - overhead}), restart flanneld on every node, recreate the pods"
            if carry
            else ""
        )
    )
    return Finding(
        cause=CAUSE,
        title=f"the path between {node + ' and its peers' if node else 'nodes'} {carried}, less than both "
        f"ends' uplinks: full-size overlay packets ({need} bytes with VXLAN) are lost on the way",
        confidence=0.8,
        node=node,
        evidence=tuple(evidence),
        fix=fix,
        # only packets above what the path carries are lost: the full-size checks across these paths
        explains=(scope(checks=[MTU], pairs=[(a, b) for a, b, *_ in short]),),
        detail="small requests pass; only packets above the path's MTU are lost",
    )


SMALL_TEXT = "84-byte ones"
RULE = Rule(cause=CAUSE, applies=FLANNEL_VXLAN, category="Path MTU between nodes below both ends", run=rule)
