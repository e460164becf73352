"""net.ipv4.ip_forward=0: the node does not route between cni0 and flannel.1."""

from __future__ import annotations

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._rule import Rule
from ._util import inspected

CAUSE = "ip-forward-off"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        if ne.sysctl.get("net.ipv4.ip_forward") == "0":
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"{ne.node} does not forward IPv4 (net.ipv4.ip_forward = 0)",
                    confidence=0.95,
                    node=ne.node,
                    evidence=(f"{ne.node}$ sysctl net.ipv4.ip_forward: {ne.sysctl_line('net.ipv4.ip_forward')}",),
                    fix=f"on {ne.node}: sysctl -w net.ipv4.ip_forward=1 and persist it in /etc/sysctl.d/",
                    explains=(scope(nodes=[ne.node], cross_node=True),),
                )
            )
        nf = ev.facts.nodes.get(ne.node)
        if nf is not None and nf.pod_cidrs_v6 and ne.sysctl.get("net.ipv6.conf.all.forwarding") == "0":
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"{ne.node} does not forward IPv6 (net.ipv6.conf.all.forwarding = 0) but has IPv6 pods "
                    f"({', '.join(nf.pod_cidrs_v6)})",
                    confidence=0.95,
                    node=ne.node,
                    evidence=(f"{ne.node}$ sysctl: {ne.sysctl_line('net.ipv6.conf.all.forwarding')}",),
                    fix=f"on {ne.node}: sysctl -w net.ipv6.conf.all.forwarding=1 and persist it in /etc/sysctl.d/",
                    explains=(scope(nodes=[ne.node], cross_node=True),),
                )
            )
    return out


RULE = Rule(cause=CAUSE, category="IP forwarding off on a node", run=rule)
