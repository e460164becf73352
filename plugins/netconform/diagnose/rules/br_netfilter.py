"""br_netfilter off: bridged replies skip conntrack, so ClusterIP to a pod on the same bridge breaks."""

from __future__ import annotations

from netconform.checks import DNS, NODEPORT, SERVICE, STABILITY

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._rule import Rule
from ._util import inspected

CAUSE = "bridge-nf-call-iptables-off"
KEY = "net.bridge.bridge-nf-call-iptables"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        if "sysctl" not in ne.sections or "cni0" not in ne.links:
            continue
        val = ne.sysctl.get(KEY)
        if val == "1":
            continue
        line = (
            ne.sysctl_line(KEY)
            or ne.line_of("sysctl", lambda s: "bridge-nf-call-iptables" in s)
            or f"(no {KEY}: br_netfilter not loaded)"
        )
        out.append(
            Finding(
                cause=CAUSE,
                title=f"{ne.node}: bridged pod traffic bypasses iptables ({KEY} {'= 0' if val == '0' else 'absent'})",
                confidence=0.85,
                node=ne.node,
                evidence=(f"{ne.node}$ sysctl {KEY}: {line}",),
                fix=f"on {ne.node}: modprobe br_netfilter && sysctl -w {KEY}=1 (persist both)",
                explains=(
                    scope(checks=[SERVICE, DNS, NODEPORT, STABILITY], src_nodes=[ne.node], dst_nodes=[ne.node]),
                    # seen on the lab: lookups from other nodes answered by the CoreDNS pod on this node fail too
                    # (SERVFAIL "server misbehaving"); a DNS failure reaching this node's CoreDNS is in scope
                    scope(checks=[DNS], dst_nodes=[ne.node]),
                ),
                detail="a Service whose chosen endpoint sits on the client's own bridge gets replies from the pod IP",
            )
        )
    return out


RULE = Rule(cause=CAUSE, category="bridge-nf-call-iptables off (Services break on the bridge)", run=rule)
