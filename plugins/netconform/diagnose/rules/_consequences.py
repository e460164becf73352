"""Findings that follow from another one on the same node, folded into it: one cause, one fix.

An uplink or a path whose MTU falls below what a node's live TCP connections negotiated (their MSS was set
at the old MTU) drops their full-size segments without an ICMP error, as it drops the overlay's. kube-proxy's
watch of the API server on that node is such a connection: it stalls, and the Services created since have
no rules there (seen in CI: every probe Service missing on lab-node-2 only, under mtu-uplink and mtu-path;
on the lab a lone full-size segment is lost while larger GSO batches pass the veth, so the watch stalls
until more data follows; behind a real NIC it stalls until the connection times out).
So kube-proxy-rules-missing on a node that has an MTU cause of its own is that cause, not a second fault:
its failures and evidence go to the MTU finding, whose fix then restarts kube-proxy there. The order
matters: restarted first, kube-proxy's new connection would stall again behind a short path.
"""

from __future__ import annotations

from dataclasses import replace

from ..model import Finding

MTU_CAUSES = ("mtu-uplink-too-small", "mtu-path-too-small")
STALLED = "kube-proxy-rules-missing"


def fold(findings: list[Finding]) -> list[Finding]:
    """The findings with each node's kube-proxy-rules-missing folded into that node's MTU cause."""
    roots: dict[str, Finding] = {}
    for f in findings:
        if f.cause in MTU_CAUSES and f.node and not f.risk and f.confidence > 0:
            roots.setdefault(f.node, f)
    stalled = {node: [f for f in findings if f.cause == STALLED and f.node == node and not f.risk] for node in roots}
    out: list[Finding] = []
    for f in findings:
        if f.cause == STALLED and f.node in roots and not f.risk:
            continue
        if f.node in roots and roots[f.node] is f and stalled[f.node]:
            f = _absorb(f, stalled[f.node])
        out.append(f)
    return out


def _absorb(root: Finding, parts: list[Finding]) -> Finding:
    node = root.node
    because = (
        f"{node}: kube-proxy's connection to the API server was opened at the old MTU; its full-size segments "
        "are lost the same way, so its watch stalls and the Services created since have no rules there"
    )
    return replace(
        root,
        evidence=root.evidence + tuple(p.title for p in parts) + (because,),
        explains=root.explains + tuple(s for p in parts for s in p.explains),
        fix=f"{root.fix}; either way, then on {node}: restart kube-proxy (its stalled watch re-syncs every rule)",
    )
