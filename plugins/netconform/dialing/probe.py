"""The probe's wire format: the spec `probe dial --spec -` reads on stdin, and the JSON it prints."""

from __future__ import annotations

import json
from typing import Any

from netconform.dialing.model import Attempt, DialResult, Source, Target
from netconform.errors import ProbeRunError
from netconform.workload.labels import PROBE_BINARY

__all__ = ["DIAL_COMMAND", "build_spec", "parse_output", "worst_case_seconds"]

# The spec travels on stdin, not in an argument: no size limit (a 1000-node plan is megabytes).
DIAL_COMMAND = [PROBE_BINARY, "dial", "--spec", "-"]


def build_spec(targets: list[Target], timeout_ms: int, concurrency: int = 64) -> dict[str, Any]:
    return {"timeout_ms": timeout_ms, "concurrency": concurrency, "targets": [t.spec() for t in targets]}


def worst_case_seconds(targets: list[Target], timeout_ms: int, concurrency: int = 64) -> float:
    """How long `probe dial` may legitimately take if every attempt times out (bounds the exec wait)."""
    if not targets:
        return 0.0
    per_target = [_worst_case_target(t, timeout_ms / 1000) for t in targets]
    return max(per_target) + sum(per_target) / concurrency


def _worst_case_target(target: Target, timeout_s: float) -> float:
    if target.proto == "dns":
        return (max(target.count, 1) + 2) * timeout_s  # each lookup within the timeout; 2 more for a loaded node
    # failures stop at max_failures; the other attempts answered (allow 250 ms each: a loaded node;
    # slower than that for hundreds of connections, "did not finish within" is the right verdict)
    failing = min(target.count, target.max_failures) if target.max_failures else target.count
    return failing * timeout_s + (target.count - failing) * 0.25


def parse_output(source: Source, targets: list[Target], stdout: str, timeout_ms: int) -> list[DialResult]:
    """Turn `probe dial` stdout into one DialResult per target. Raises ProbeRunError if it is not the probe's JSON."""
    try:
        doc = json.loads(stdout)
    except (ValueError, RecursionError):
        snippet = stdout.strip().replace("\n", " ")[:160] or "nothing"
        raise ProbeRunError(f"output is not JSON: {snippet}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ProbeRunError("output has no 'results' list")
    try:
        return _results(source, targets, doc, timeout_ms)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:  # the right keys, the wrong values
        raise ProbeRunError(f"output is not the probe's JSON: {type(exc).__name__} {str(exc)[:120]}") from None


def _results(source: Source, targets: list[Target], doc: dict[str, Any], timeout_ms: int) -> list[DialResult]:
    by_id = {r.get("id"): r for r in doc["results"] if isinstance(r, dict) and isinstance(r.get("id"), str)}
    own = doc.get("source")
    own_ips = [str(ip) for ip in own.get("ips") or []] if isinstance(own, dict) else []
    results = []
    for target in targets:
        raw = by_id.get(target.id)
        if raw is None:
            attempts = [Attempt(ok=False, error="other", detail="the probe returned no result for this target")]
            addresses: list[str] = []
            stopped = ""
        else:
            listed = raw.get("attempts") or []
            attempts = (
                [Attempt.from_probe(a) for a in listed if isinstance(a, dict)] if isinstance(listed, list) else []
            )
            addrs = raw.get("addresses") or []
            addresses = [str(a) for a in addrs] if isinstance(addrs, list) else []
            stopped = str(raw.get("stopped") or "")
        results.append(
            DialResult(
                source_pod=source.pod,
                source_ip=_same_family(source.ip, target.host, own_ips),
                source_node=source.node,
                target_id=target.id,
                check=target.check,
                proto=target.proto,
                host=target.host,
                port=target.port,
                dest_node=target.dst_node,
                dest_label=target.dst_label,
                attempts=attempts,
                timeout_ms=timeout_ms,
                addresses=addresses,
                stopped=stopped,
                bound=target.count,
            )
        )
    return results


def _same_family(primary: str, host: str, ips: list[str]) -> str:
    """The source address a target is dialed from: the pod's address of the target's family (an IPv6
    path leaves from the pod's IPv6 address), else its primary one."""
    want = ":" in host
    if (":" in primary) == want or not host:
        return primary
    return next((ip for ip in ips if (":" in ip) == want), primary)
