"""What the dial results of the failed tests show per source: the per-source pattern (issue 10 item 5(d)).

Per (source node, address dialed) every dial the source made there in the run, each with its attempts in
order (`ok T*4`, see netconform.dialing.path): a failed path carries its own (`attempts`) and the source's
other dials to the same address (`same_host`). Read from those, one of:

- `first-ok-then-timeouts`: on one port, the first connection(s) passed and every later one timed out
  (no connection passed after one had failed, at least 2 timeouts): per-source state on the way drops a
  source's later connections (a `-m recent`/connlimit/hashlimit limit, tcp_tw_recycle's PAWS check).
- `ok-on-another-port`: only timeouts on the failed ports, a connection to another port of the address
  passed: consistent with the same, weaker (a Service of its own could be broken).
- `all-fail`: no connection there passed in the run.
- `random-loss`: a connection passed after one had failed (a full conntrack table, an insert race).
- `other`: failures that are not timeouts, or one timeout after passed connections on the same port.

Only TCP paths are read (the pattern is of unanswered SYNs), and a failed path's other dials are those of the
same protocol and request size (dialing.model.DialResult.like). Nothing is read from a path recorded without
attempts (an older recording): no pattern then.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netconform.dialing.path import PathInfo, SameHost, decode_outcomes, encode_outcomes

from .facts import ClusterFacts

__all__ = ["FIRST_OK", "OK_ELSEWHERE", "Dial", "SourcePattern", "source_patterns"]

FIRST_OK = "first-ok-then-timeouts"
OK_ELSEWHERE = "ok-on-another-port"


@dataclass(frozen=True)
class Dial:
    """One dial (a target of the probe) of a source to an address: its attempts' codes in order."""

    port: int
    proto: str
    outcomes: tuple[str, ...]


@dataclass(frozen=True)
class SourcePattern:
    src_node: str
    host: str  # the address dialed
    dst_node: str | None  # the node owning it (a NodePort), None for a pod or ClusterIP address
    kind: str
    dials: tuple[Dial, ...]
    port: int | None = None  # where a first-ok pattern shows
    passed: int = 0  # connections that passed there (the first ones)
    timed_out: int = 0  # connections that timed out after them
    checks: tuple[str, ...] = ()  # the failed paths' checks
    ports: tuple[int, ...] = ()  # the failed paths' ports
    src_in_cluster: bool = True  # the source is a node's pod (not this machine, "outside the cluster")

    def through(self, node: str) -> bool:
        """The dials leave from `node`'s pod or go to one of its addresses (state on either may drop them)."""
        return node in (self.src_node, self.dst_node)

    @property
    def first_ok(self) -> bool:
        return self.kind == FIRST_OK

    def where(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        p = f":{port}" if port else ""
        return f"{self.dst_node}{p} ({host})" if self.dst_node else f"{host}{p}"

    def quote(self) -> str:
        """The pattern in one line, with the raw outcomes (each dial's attempts in order, `|` between dials)."""
        src = f"from {self.src_node}'s pod to" if self.src_in_cluster else f"from {self.src_node} to"
        if self.kind == FIRST_OK:
            dials = " | ".join(encode_outcomes(d.outcomes) for d in self.dials if d.port == self.port)
            first = "the first connection passed" if self.passed == 1 else f"the first {self.passed} connections passed"
            return (
                f"{src} {self.where(self.port)} {first}, the next {self.timed_out} timed out "
                f"(SYN without answer; its dials there, each in order: {dials})"
            )
        dials = " | ".join(f"{d.port}: {encode_outcomes(d.outcomes)}" for d in self.dials)
        if self.kind == OK_ELSEWHERE:
            return f"{src} {self.where()}: connections to another port passed, those to {self._ports()} timed out ({dials})"
        if self.kind == "all-fail":
            return f"{src} {self.where()}: no connection passed in this run ({dials})"
        if self.kind == "random-loss":
            return f"{src} {self.where()}: connections passed after others had failed ({dials})"
        return f"{src} {self.where()}: {dials}"

    def _ports(self) -> str:
        return ", ".join(f":{p}" for p in self.ports)


def _classify(dials: list[Dial]) -> tuple[str, int | None, int, int]:
    codes = [c for d in dials for c in d.outcomes]
    if not any(c == "ok" for c in codes):
        return "all-fail", None, 0, 0
    if any(_ok_after_failure(d.outcomes) for d in dials):
        return "random-loss", None, 0, 0
    if any(c not in ("ok", "T") for c in codes):
        return "other", None, 0, 0
    best: tuple[int, int, int] | None = None  # (timeouts, port, oks)
    mixed = False  # a port where connections passed and timed out
    for port in sorted({d.port for d in dials}):
        on = [c for d in dials if d.port == port for c in d.outcomes]
        oks, timeouts = on.count("ok"), on.count("T")
        mixed = mixed or bool(oks and timeouts)
        if oks and timeouts >= 2 and (best is None or timeouts > best[0]):
            best = (timeouts, port, oks)
    if best is not None:
        return FIRST_OK, best[1], best[2], best[0]
    # a single timeout after a passed connection on one port says too little; else the ports split cleanly
    return "other" if mixed else OK_ELSEWHERE, None, 0, 0


def _ok_after_failure(outcomes: tuple[str, ...]) -> bool:
    failed = False
    for c in outcomes:
        if c != "ok":
            failed = True
        elif failed:
            return True
    return False


def _dials_of(path: PathInfo) -> list[Dial] | None:
    """The source's dials to the path's address: its own, then the others it recorded; None without attempts."""
    if not path.attempts or path.target_port is None:
        return None
    proto = path.proto or "tcp"
    own = Dial(path.target_port, proto, tuple(decode_outcomes(path.attempts)))
    others = [Dial(s.port, s.proto, s.outcomes) for s in SameHost.decode_all(path.same_host)]
    return [own, *[d for d in others if d.outcomes and d.proto == proto]]


def source_patterns(paths: Iterable[PathInfo], facts: ClusterFacts) -> list[SourcePattern]:
    """One pattern per (source node, address) among the failed paths that carry their attempts."""
    groups: dict[tuple[str, str], list[PathInfo]] = {}
    for p in paths:
        # TCP connections only: the pattern is of SYNs left unanswered (a UDP or full-size probe is another story)
        if p.src_node and p.error and p.target_ip and p.attempts and p.proto in ("tcp", "") and p.check != "mtu":
            groups.setdefault((p.src_node, p.target_ip), []).append(p)
    out = []
    for (src, host), group in sorted(groups.items()):
        dials = _dials_of(group[0])
        if not dials:
            continue
        kind, port, passed, timed_out = _classify(dials)
        dst = facts.node_of_ip(host) if facts.is_node_ip(host) else None
        out.append(
            SourcePattern(
                src,
                host,
                dst,
                kind,
                tuple(dials),
                port,
                passed,
                timed_out,
                tuple(sorted({p.check for p in group})),
                tuple(sorted({p.target_port for p in group if p.target_port})),
                src in facts.nodes,
            )
        )
    return out
