"""Map failed paths to the findings that explain them, and rank causes by how much they explain."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netconform.checks import DNS, HAIRPIN, MTU, NETWORK_POLICY, NODEPORT, POD_TO_POD, SERVICE, STABILITY
from netconform.dialing.path import PathInfo

from .facts import ClusterFacts
from .model import Finding, Hop, Scope


def _dns_nodes(facts: ClusterFacts) -> list[str]:
    """Nodes hosting CoreDNS endpoints (a DNS failure is a failure of the path to them)."""
    svc = facts.services.get(facts.dns_service)
    nodes = {e.node for e in (svc.ready_endpoints if svc else ()) if e.node}
    if not nodes:
        nodes = {p.node for p in facts.coredns if p.node}
    return sorted(nodes)


def hops_for(path: PathInfo, facts: ClusterFacts) -> list[Hop]:
    """The node-to-node legs a failed path depends on."""
    src = path.src_node
    if path.check == DNS:
        return [Hop(src, n) for n in _dns_nodes(facts)] or [Hop(src, None)]
    ip = path.target_ip
    if ip and facts.is_node_ip(ip):
        # NodePort: client -> node (underlay), then kube-proxy on that node -> a backend (overlay)
        via = facts.node_of_ip(ip)
        hops = [Hop(src, via, overlay=False)]
        # the suite's dst_node of a NodePort path is the node dialled, not the backend: a failed
        # attempt never learns which backend kube-proxy picked, so every backend it may pick counts
        # eTP=Local binds only traffic from outside: kube-proxy sends pod traffic to every endpoint
        local_only = src not in facts.nodes
        backends = set(_backends_by_port(facts, path.target_port, via if local_only else None))
        if path.dst_node and path.dst_node != via:
            backends.add(path.dst_node)
        return hops + [Hop(via, b) for b in sorted(backends) if b]
    svc = facts.service_by_ip(ip) if ip else None
    if svc is not None:
        # ClusterIP: DNAT on the client's node, then the overlay to whichever endpoint was picked
        if path.dst_node:
            return [Hop(src, path.dst_node)]
        # the endpoints of the dialled address's family (dual-stack: each family has its own)
        same = [e for e in svc.ready_endpoints if _family(e.ip) == _family(ip)] or list(svc.ready_endpoints)
        return [Hop(src, e.node) for e in same if e.node] or [Hop(src, None)]
    return [Hop(src, path.dst_node or (facts.node_of_ip(ip) if ip else None))]


def _family(ip: str) -> int | None:
    """4 or 6 for an address, None for a name (a DNS path's target)."""
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return None


def _backends_by_port(facts: ClusterFacts, port: int | None, via: str | None = None) -> list[str]:
    """Nodes of the endpoints a NodePort on `via` may forward to (eTP=Local: only its own)."""
    for s in facts.services.values():
        if any(p.node_port == port for p in s.ports):
            nodes = {e.node for e in s.ready_endpoints if e.node}
            if s.external_traffic_policy == "Local" and via:
                nodes &= {via}
            return sorted(nodes)
    return []


def _specificity(s: Scope) -> int:
    return 3 if s.pairs else 2 if (s.src_nodes or s.dst_nodes) else 1 if s.nodes else 0


def _checks_of(path: PathInfo, facts: ClusterFacts) -> tuple[str, ...]:
    """The check a path belongs to, plus what it is underneath: a stability run is a NodePort or a
    ClusterIP path, a hairpin a ClusterIP path, a full-size datagram a pod or ClusterIP path, and every
    finding about those explains it too."""
    if path.check == STABILITY:
        return (STABILITY, NODEPORT if facts.is_node_ip(path.target_ip) else SERVICE)
    if path.check == HAIRPIN:  # a pod through a ClusterIP back to itself
        return (HAIRPIN, SERVICE)
    if path.check == MTU:  # full-size datagrams to a pod, or through the ClusterIP
        return (MTU, SERVICE if facts.service_by_ip(path.target_ip) else POD_TO_POD)
    if path.check == NETWORK_POLICY:  # a policy target's pod IP, before (or without) any policy
        return (NETWORK_POLICY, POD_TO_POD)
    return (path.check,)


def explains(f: Finding, path: PathInfo, facts: ClusterFacts) -> bool:
    hops = hops_for(path, facts)
    family = _family(path.target_ip)
    return any(
        sc.matches(c, path.error or "", h, path.target_port, family, path.target)
        for sc in f.explains
        for h in hops
        for c in _checks_of(path, facts)
    )


def explaining(findings: Iterable[Finding], paths: list[PathInfo], facts: ClusterFacts) -> list[Finding]:
    """Findings that explain at least one of a test's failed paths, most convincing first."""
    out = [f for f in findings if any(explains(f, p, facts) for p in paths)]
    return sorted(out, key=lambda f: (-f.confidence, -max((_specificity(s) for s in f.explains), default=0), f.cause))


def failed_paths(recorded: Iterable[PathInfo]) -> list[PathInfo]:
    """The paths of a failed test to diagnose: those that carry an error when any does."""
    paths = [p for p in recorded if p.error != "probe_not_run"]  # the probe did not run: no network verdict
    with_error = [p for p in paths if p.error and p.error != "None"]
    return with_error or paths


@dataclass
class CauseGroup:
    key: tuple[str, str | None]  # (cause, node)
    title: str
    fix: str
    confidence: float
    failures: list[str] = field(default_factory=list)  # nodeids it explains
    primary: list[str] = field(default_factory=list)  # nodeids for which it is the top-ranked cause
    # one cause on one node may be several findings (a stale entry per peer): every title and fix counts
    titles: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)


def rank(per_failure: dict[str, list[dict[str, Any]]]) -> tuple[list[CauseGroup], list[str]]:
    """Group findings (as attached to reports) by (cause, node); rank by failures explained.

    Returns (groups best first, nodeids no finding explains). Works on plain dicts so
    it runs on the xdist controller from serialized reports.
    """
    groups: dict[tuple[str, str | None], CauseGroup] = {}
    for nodeid, fs in per_failure.items():
        seen: set[tuple[str, str | None]] = set()
        for f in fs:
            key = (f["cause"], f.get("node"))
            g = groups.setdefault(key, CauseGroup(key, f["title"], f.get("fix", ""), f.get("confidence", 0.0)))
            g.confidence = max(g.confidence, f.get("confidence", 0.0))
            if f["title"] not in g.titles:
                g.titles.append(f["title"])
            if f.get("fix") and f["fix"] not in g.fixes:
                g.fixes.append(f["fix"])
            if key not in seen:
                g.failures.append(nodeid)
                seen.add(key)
    ordered = sorted(groups.values(), key=lambda g: (-len(g.failures), -g.confidence, g.key[0], g.key[1] or ""))
    order = {g.key: i for i, g in enumerate(ordered)}
    unexplained = []
    for nodeid, fs in per_failure.items():
        keys = [(f["cause"], f.get("node")) for f in fs]
        if not keys:
            unexplained.append(nodeid)
            continue
        groups[min(keys, key=lambda k: order[k])].primary.append(nodeid)
    return ordered, unexplained


def summary_lines(groups: list[CauseGroup], unexplained: list[str], total: int) -> list[str]:
    lines: list[str] = []
    for g in groups:
        if not g.primary:
            continue
        n = len(g.failures)
        where = f" on {g.key[1]}" if g.key[1] else ""
        titles = g.titles or [g.title]
        lines.append(f"{g.key[0]}{where} explains {n} failure{'s' if n != 1 else ''}: {titles[0]}")
        lines.extend(f"    and: {t}" for t in titles[1:])
        lines.extend(f"    fix: {x}" for x in (g.fixes or ([g.fix] if g.fix else [])))
    if unexplained:
        lines.append(f"{len(unexplained)} of {total} failures have no diagnosed cause (first: {unexplained[0]})")
    return lines
