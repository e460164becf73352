"""Shared value types of the diagnose package (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Hop:
    """A node-to-node leg a failed path depends on (dst None = unknown far end)."""

    src: str | None
    dst: str | None
    overlay: bool = True  # pod network (flannel.1) or node network (NodePort to a node IP)


@dataclass(frozen=True)
class Scope:
    """Which failed paths a finding explains. Every set given must match; None = any.

    pairs: unordered node pairs whose overlay traffic is broken (both directions:
    a one-sided stale entry breaks the reply of the other direction too).
    """

    checks: frozenset[str] | None = None
    nodes: frozenset[str] | None = None  # a hop touching one of these nodes
    src_nodes: frozenset[str] | None = None
    dst_nodes: frozenset[str] | None = None
    pairs: frozenset[frozenset[str]] | None = None
    cross_node: bool = False  # only hops between two different nodes
    overlay_only: bool = False
    underlay_only: bool = False  # only the client -> node leg of a NodePort path
    errors: frozenset[str] | None = None
    target_ports: frozenset[int] | None = None
    families: frozenset[int] | None = None  # IP versions (4, 6) of the dialled address; a name matches any
    targets: frozenset[str] | None = None  # what the path dialled or looked up, as recorded (a DNS name)

    def matches(
        self,
        check: str,
        error: str,
        hop: Hop,
        target_port: int | None = None,
        family: int | None = None,
        target: str | None = None,
    ) -> bool:
        if self.checks is not None and check not in self.checks:
            return False
        if self.targets is not None and target not in self.targets:
            return False
        if self.families is not None and family is not None and family not in self.families:
            return False
        if self.target_ports is not None and target_port not in self.target_ports:
            return False
        if self.errors is not None and error not in self.errors:
            return False
        if self.overlay_only and not hop.overlay:
            return False
        if self.underlay_only and hop.overlay:
            return False
        if self.cross_node and (hop.dst is None or hop.src == hop.dst):
            return False
        if self.nodes is not None and not ({hop.src, hop.dst} & self.nodes):
            return False
        if self.src_nodes is not None and hop.src not in self.src_nodes:
            return False
        if self.dst_nodes is not None and hop.dst not in self.dst_nodes:
            return False
        return self.pairs is None or (
            hop.src is not None and hop.dst is not None and frozenset((hop.src, hop.dst)) in self.pairs
        )


def scope(
    checks: Iterable[str] | None = None,
    nodes: Iterable[str] | None = None,
    src_nodes: Iterable[str] | None = None,
    dst_nodes: Iterable[str] | None = None,
    pairs: Iterable[tuple[str, str]] | None = None,
    cross_node: bool = False,
    overlay_only: bool = False,
    underlay_only: bool = False,
    errors: Iterable[str] | None = None,
    target_ports: Iterable[int] | None = None,
    families: Iterable[int] | None = None,
    targets: Iterable[str] | None = None,
) -> Scope:
    """Convenience constructor taking plain iterables."""

    def fs(x: Iterable[str] | None) -> frozenset[str] | None:
        return None if x is None else frozenset(x)

    return Scope(
        checks=fs(checks),
        nodes=fs(nodes),
        src_nodes=fs(src_nodes),
        dst_nodes=fs(dst_nodes),
        pairs=None if pairs is None else frozenset(frozenset(p) for p in pairs),
        cross_node=cross_node,
        overlay_only=overlay_only,
        underlay_only=underlay_only,
        errors=fs(errors),
        target_ports=None if target_ports is None else frozenset(target_ports),
        families=None if families is None else frozenset(families),
        targets=fs(targets),
    )


NOTHING = Scope(checks=frozenset())  # informational findings explain no failure


@dataclass(frozen=True, kw_only=True)
class Finding:
    cause: str  # stable id, e.g. "stale-flannel-arp"
    title: str  # one line an operator reads
    confidence: float  # 0..1
    node: str | None  # node holding the faulty state (None = cluster-wide)
    evidence: tuple[str, ...]  # lines quoted verbatim from command output / API facts
    fix: str  # a command or an action
    explains: tuple[Scope, ...] = ()
    detail: str = ""
    risk: bool = False  # a setting that breaks nothing observed: reported apart from causes, never fails a run

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.cause, self.node, self.title)

    def render(self) -> str:
        lines = [f"cause: {self.cause} (confidence {self.confidence:.1f})", f"  {self.title}"]
        if self.node:
            lines.append(f"  node: {self.node}")
        if self.detail:
            lines.append(f"  {self.detail}")
        if self.evidence:
            lines.append("  evidence:")
            lines.extend(f"    {e}" for e in self.evidence)
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "title": self.title,
            "confidence": self.confidence,
            "node": self.node,
            "evidence": list(self.evidence),
            "fix": self.fix,
            "detail": self.detail,
        }


def risk(cause: str, title: str, node: str | None, evidence: tuple[str, ...], fix: str, detail: str = "") -> Finding:
    """A risk: confidence 0 (not a cause, does not fail --diagnose-only), explains no failure."""
    return Finding(
        cause=cause,
        title=title,
        confidence=0.0,
        node=node,
        evidence=evidence,
        fix=fix,
        explains=(NOTHING,),
        detail=detail,
        risk=True,
    )
