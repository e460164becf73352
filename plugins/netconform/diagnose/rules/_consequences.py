"""Findings that follow from another one on the same node, folded into it: one cause, one fix.

An uplink or a path whose MTU falls below what a node's live TCP connections negotiated (their MSS was set
at the old MTU) drops their full-size segments without an ICMP error, as it drops the overlay's. kube-proxy's
watch of the API server on that node is such a connection: it stalls, and the Services created since have
no rules there (seen in CI: every probe Service missing on lab-node-2 only, under mtu-uplink and mtu-path;
on the lab a lone full-size segment is lost while larger GSO batches pass the veth, so the watch stalls
until more data follows; behind a real NIC it stalls until the connection times out).
A CoreDNS pod there answers from the same stalled view (seen in CI: the headless Service's answer of the pod on
lab-node-2 differed from its peers'). So kube-proxy-rules-missing, or a CoreDNS pod answering otherwise than
its peers, on a node that has an MTU cause of its own is that cause, not a second fault: its failures and
evidence go to the MTU finding, whose fix then restarts what stalled. The order matters: restarted first,
the new connection would stall again behind a short path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..model import Finding

MTU_CAUSES = ("mtu-uplink-too-small", "mtu-path-too-small")
# what a stalled watch on the node leaves, and what brings it back once the MTU is right: (who, then)
STALLED: dict[str, tuple[str, Callable[[Finding], str]]] = {
    "kube-proxy-rules-missing": (
        "kube-proxy's",
        lambda f: f"on {f.node}: restart kube-proxy (its stalled watch re-syncs every rule)",
    ),
    # node set: one CoreDNS pod there answers otherwise than its peers (not a Corefile block)
    "coredns-wrong-answer": (
        "its CoreDNS pod's",
        lambda f: f"{f.fix.split(' (')[0]} (its stalled watch left it answering from an old view)",
    ),
}


def _stalled(f: Finding, roots: dict[str, Finding]) -> bool:
    return f.cause in STALLED and f.node in roots and not f.risk


def fold(findings: list[Finding]) -> list[Finding]:
    """The findings with what a node's stalled watches left folded into that node's MTU cause."""
    roots: dict[str, Finding] = {}
    for f in findings:
        if f.cause in MTU_CAUSES and f.node and not f.risk and f.confidence > 0:
            roots.setdefault(f.node, f)
    parts = {node: [f for f in findings if _stalled(f, roots) and f.node == node] for node in roots}
    out: list[Finding] = []
    for f in findings:
        if _stalled(f, roots):
            continue
        if f.node in roots and roots[f.node] is f and parts[f.node]:
            f = _absorb(f, parts[f.node])
        out.append(f)
    return out


def _absorb(root: Finding, parts: list[Finding]) -> Finding:
    who = " and ".join(dict.fromkeys(STALLED[p.cause][0] for p in parts))
    because = (
        f"{root.node}: {who} connection to the API server was opened at the old MTU; its full-size segments are "
        "lost the same way, so its watch stalls and what changed since is missing there"
    )
    then = "; ".join(dict.fromkeys(STALLED[p.cause][1](p) for p in parts))
    return replace(
        root,
        evidence=root.evidence + tuple(p.title for p in parts) + (because,),
        explains=root.explains + tuple(s for p in parts for s in p.explains),
        fix=f"{root.fix}; either way, then {then}",
    )
