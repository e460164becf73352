"""What a dial produced: targets, attempts, results per client pod, and their wording.

A failure reads like `nc-client-abcde (10.244.1.5, lab-node-2) -> 10.244.2.7:8080 (lab-node-3):
timeout after 2s`: the path, then what went wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from netconform.dialing.path import MAX_SAME_HOST, PathInfo, SameHost, encode_outcomes, outcome_code

__all__ = [
    "STOP_AFTER_FAILURES",
    "Attempt",
    "DialResult",
    "Source",
    "SourceOutcome",
    "Target",
    "connection_summary",
    "percentile",
]

# A many-attempt target stops after this many failures: a dead path then costs a few timeouts,
# not all of its attempts, and the verdict is the same.
STOP_AFTER_FAILURES = 5


ERROR_WORDS = {
    "timeout": "timeout",
    "refused": "connection refused",
    "reset": "connection reset",
    "unreachable": "unreachable",
    "dns": "DNS lookup failed",
}


@dataclass(frozen=True)
class Target:
    """One thing a client pod dials. `check` and `dst_node` stay here; only the spec goes to the probe."""

    id: str
    proto: str  # tcp | udp | dns
    host: str
    port: int
    check: str
    count: int = 1
    dst_node: str | None = None
    dst_label: str = ""  # what `host` is when it is not a pod on dst_node, e.g. "ClusterIP nc-server"
    max_failures: int = 0  # the probe stops this target after so many failures (0: never)
    want_backends: int = 0  # stop once this many distinct servers answered; `count` is then the bound
    payload_bytes: int = 0  # udp: exact datagram payload; tcp: POST /echo-size body (0: the small request)
    df: bool = False  # udp: never fragment (path MTU checks)
    family: str = ""  # dns/names: "4" (A only), "6" (AAAA only), "" (both)

    def spec(self) -> dict[str, Any]:
        """What the probe reads for this target (probe/README.md has the format)."""
        spec: dict[str, Any] = {
            "id": self.id,
            "proto": self.proto,
            "host": self.host,
            "port": self.port,
            "count": self.count,
        }
        optional = {
            "max_failures": self.max_failures,
            "want_backends": self.want_backends,
            "payload_bytes": self.payload_bytes,
            "df": self.df,
            "family": self.family,
        }
        spec.update({key: value for key, value in optional.items() if value})
        return spec


@dataclass
class Attempt:
    ok: bool
    error: str = ""
    detail: str = ""
    connect_ms: float = 0.0
    total_ms: float = 0.0
    server_hostname: str = ""
    server_node: str = ""
    client_ip_seen: str = ""
    index: int = 0  # 1-based position among the target's attempts
    start_ms: float = 0.0  # since the target's first attempt started
    local_port: int = 0  # tcp/udp source port (match it in a capture)
    client_port_seen: int = 0  # the port the server saw (differs from local_port behind a NAT)
    payload_bytes: int = 0
    server_bytes: int = 0

    @classmethod
    def from_probe(cls, raw: dict[str, Any]) -> Attempt:
        return cls(
            ok=bool(raw.get("ok")),
            index=int(raw.get("index") or 0),
            start_ms=float(raw.get("start_ms") or 0.0),
            local_port=int(raw.get("local_port") or 0),
            client_port_seen=int(raw.get("client_port_seen") or 0),
            payload_bytes=int(raw.get("payload_bytes") or 0),
            server_bytes=int(raw.get("server_bytes") or 0),
            error=str(raw.get("error") or ""),
            detail=str(raw.get("detail") or ""),
            connect_ms=float(raw.get("connect_ms") or 0.0),
            total_ms=float(raw.get("total_ms") or 0.0),
            server_hostname=str(raw.get("server_hostname") or ""),
            server_node=str(raw.get("server_node") or ""),
            client_ip_seen=str(raw.get("client_ip_seen") or ""),
        )


@dataclass
class DialResult:
    source_pod: str
    source_ip: str
    source_node: str
    target_id: str
    check: str
    proto: str
    host: str
    port: int
    dest_node: str | None
    attempts: list[Attempt]
    dest_label: str = ""
    timeout_ms: int = 0
    addresses: list[str] = field(default_factory=list)  # dns only
    stopped: str = ""  # why the probe stopped: backends | count | max_failures ("" for one attempt)
    bound: int = 0  # the most attempts the target was allowed (count)

    @property
    def ok(self) -> bool:
        """Every attempt succeeded; for dns, the last lookup was answered (the probe retries only a
        lookup nobody answered, as the pod's resolver does: an earlier lost query is in `failures`)."""
        if self.proto == "dns":
            return bool(self.attempts) and self.attempts[-1].ok
        return bool(self.attempts) and all(a.ok for a in self.attempts)

    @property
    def failures(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok]

    @property
    def success_ratio(self) -> float:
        return (len(self.attempts) - len(self.failures)) / len(self.attempts) if self.attempts else 0.0

    @property
    def backends(self) -> list[str]:
        """Server hostnames that answered, sorted."""
        return sorted({a.server_hostname for a in self.attempts if a.ok and a.server_hostname})

    @property
    def seen_ips(self) -> list[str]:
        return sorted({a.client_ip_seen for a in self.attempts if a.ok and a.client_ip_seen})

    def connect_percentile(self, pct: float) -> float | None:
        return percentile([a.connect_ms for a in self.attempts if a.ok], pct)

    @property
    def endpoint(self) -> str:
        if self.proto == "dns":
            return self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def path(self) -> str:
        """`nc-client-abcde (10.244.1.5, lab-node-2) -> 10.244.2.7:8080 (lab-node-3)`"""
        where = self.dest_label or self.dest_node
        dest = f"{self.endpoint} ({where})" if where else self.endpoint
        proto = "" if self.proto == "tcp" else f"{self.proto.upper()} "
        return f"{self.source_pod} ({self.source_ip}, {self.source_node}) -> {proto}{dest}"

    def what_went_wrong(self) -> str:
        """The failures in words: `timeout after 2s`, `3/100 failed: timeout after 2s (x2), connection refused`."""
        failed = self.failures
        if not self.attempts:
            return "the probe returned no attempt"
        if not failed:
            return "ok"
        kinds: dict[str, int] = {}
        for attempt in failed:
            words = self._error_words(attempt)
            kinds[words] = kinds.get(words, 0) + 1
        parts = [f"{words} (x{n})" if n > 1 else words for words, n in kinds.items()]
        text = ", ".join(parts)
        if len(self.attempts) > 1:
            text = f"{len(failed)}/{len(self.attempts)} attempts failed: {text}"
        return text

    def _error_words(self, attempt: Attempt) -> str:
        kind = attempt.error or "other"
        if kind == "timeout" and self.timeout_ms:
            return f"timeout after {self.timeout_ms / 1000:g}s"
        words = ERROR_WORDS.get(kind)
        if words and kind in ("unreachable", "dns") and attempt.detail:
            return f"{words} ({attempt.detail})"
        return words or (attempt.detail or kind)

    def describe(self) -> str:
        return f"{self.path()}: {self.what_went_wrong()}"

    @property
    def payload_bytes(self) -> int:
        return self.attempts[0].payload_bytes if self.attempts else 0

    def like(self, other: DialResult) -> bool:
        """Same protocol and request size: a full-size DF datagram is not compared with a small one."""
        return self.proto == other.proto and self.payload_bytes == other.payload_bytes

    @property
    def outcome_codes(self) -> tuple[str, ...]:
        """Each attempt's code in the order made (netconform.dialing.path): ("ok", "T", "T")."""
        ordered = sorted(self.attempts, key=lambda a: a.index) if all(a.index for a in self.attempts) else self.attempts
        return tuple(outcome_code(a.ok, a.error) for a in ordered)

    def path_info(self, check: str | None = None, others: Iterable[DialResult] = ()) -> PathInfo:
        """This result as the path a test checked (see netconform.dialing.path), carrying this result.
        `others`: the source's other results; on a failed path those to the same address are kept (`same_host`)."""
        first_failure = self.failures[0] if self.failures and not self.ok else None  # a retried lookup passed
        seen = self.seen_ips
        same = (  # only a failed path needs them (a passed one is read by nobody for a pattern)
            [
                SameHost(r.port, r.proto, r.outcome_codes).encode()
                for r in others
                if r is not self and r.host == self.host and r.proto != "dns" and r.attempts and r.like(self)
            ]
            if first_failure
            else []
        )
        return PathInfo(
            check=check or self.check,
            src_node=self.source_node,
            src_pod=self.source_pod,
            src_ip=self.source_ip,
            dst_node=self.dest_node,
            target=self.endpoint,
            proto=self.proto,
            error=(first_failure.error or "other") if first_failure else None,
            seen_ip=seen[0] if len(seen) == 1 else (seen or None),
            attempts=encode_outcomes(self.outcome_codes),
            same_host="; ".join(same[:MAX_SAME_HOST]),
            result=self,
        )

    def to_dict(self) -> dict[str, Any]:
        """What dataclasses.asdict gives, built directly: asdict deep-copies field by field, and this runs
        for every result of the run (the fan-out's shared book) and for every test's report attachment."""
        data = {name: getattr(self, name) for name in _RESULT_FIELDS}
        data["attempts"] = [{name: getattr(a, name) for name in _ATTEMPT_FIELDS} for a in self.attempts]
        data["addresses"] = list(self.addresses)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DialResult:
        return cls(**{**data, "attempts": [Attempt(**a) for a in data["attempts"]]})


_RESULT_FIELDS = tuple(f.name for f in fields(DialResult))
_ATTEMPT_FIELDS = tuple(f.name for f in fields(Attempt))  # every one a str, int, float or bool


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest, not an interpolation)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Source:
    """A client pod that dials."""

    pod: str
    ip: str
    node: str


@dataclass
class SourceOutcome:
    """What one client pod's dial produced: results, or why the probe could not be run there."""

    source: Source
    results: list[DialResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    tries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": asdict(self.source),
            "results": [r.to_dict() for r in self.results],
            "error": self.error,
            "seconds": self.seconds,
            "tries": self.tries,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceOutcome:
        return cls(
            source=Source(**data["source"]),
            results=[DialResult.from_dict(r) for r in data["results"]],
            error=data["error"],
            seconds=data["seconds"],
            tries=data["tries"],
        )


def connection_summary(result: DialResult) -> str:
    """Success ratio, backends and connect-time percentiles of a many-attempt target, in one line."""
    p50, p99 = result.connect_percentile(50), result.connect_percentile(99)
    timing = f"connect p50 {p50:.2f}ms p99 {p99:.2f}ms" if p50 is not None and p99 is not None else "no connection"
    ok = len(result.attempts) - len(result.failures)
    backends = ", ".join(result.backends) or "none"
    stopped = f" (stopped after {len(result.failures)} failures)" if len(result.failures) >= STOP_AFTER_FAILURES else ""
    text = (
        f"{result.path()}: {ok}/{len(result.attempts)} ok{stopped} ({result.success_ratio:.1%}), "
        f"backends {backends}, {timing}"
    )
    return text if result.ok else f"{text}; {result.what_went_wrong()}"
