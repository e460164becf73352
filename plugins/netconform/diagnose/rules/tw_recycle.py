"""Seed 2: net.ipv4.tcp_tw_recycle=1 with timestamps behind NAT drops SYNs whose TSval goes backwards.

The sysctl was removed in Linux 4.12: absent = healthy. The dial results' first-ok-then-timeouts pattern
through the node (diagnose.dialseq) raises the confidence and is quoted; without the sysctl the pattern is
per-source-limit's or per-source-pattern's (rules/per_source.py).
"""

from __future__ import annotations

from ..evidence import ClusterEvidence, NodeEvidence
from ..model import Finding, scope
from ..parsers import netstat_counter
from ._rule import Rule
from ._util import inspected, pattern_evidence

CAUSE = "tcp-tw-recycle"


def recycling(ne: NodeEvidence) -> bool:
    """tcp_tw_recycle=1 with TCP timestamps on (what drops SYNs from NATed clients)."""
    return (
        ne.error is None
        and ne.sysctl.get("net.ipv4.tcp_tw_recycle") == "1"
        and ne.sysctl.get("net.ipv4.tcp_timestamps", "1") != "0"
    )


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        if ne.sysctl.get("net.ipv4.tcp_tw_recycle") != "1":
            continue
        ts_on = ne.sysctl.get("net.ipv4.tcp_timestamps", "1") != "0"
        evidence = [f"{ne.node}$ sysctl: {ne.sysctl_line('net.ipv4.tcp_tw_recycle')}"]
        if ne.sysctl_line("net.ipv4.tcp_timestamps"):
            evidence.append(f"{ne.node}$ sysctl: {ne.sysctl_line('net.ipv4.tcp_timestamps')}")
        rejected = netstat_counter(ne.text("netstat"), "passive connections rejected because of time stamp")
        if rejected and rejected[0] > 0:
            evidence.append(f"{ne.node}$ netstat -s: {rejected[1]}")
        elif ne.nstat.get("TcpExtPAWSPassive"):
            evidence.append(f"{ne.node}$ nstat: TcpExtPAWSPassive {ne.nstat['TcpExtPAWSPassive']}")
        seen = bool(rejected and rejected[0] > 0) or bool(ne.nstat.get("TcpExtPAWSPassive"))
        quoted, first_ok = pattern_evidence(ev, ne.node) if ts_on else ([], False)
        evidence += quoted
        conf = 0.95 if ts_on and seen else (0.9 if first_ok else 0.75) if ts_on else 0.2
        out.append(
            Finding(
                cause=CAUSE,
                title=f"{ne.node} has net.ipv4.tcp_tw_recycle=1: SYNs from NATed clients with older timestamps are dropped"
                + ("" if ts_on else " (timestamps off: harmless now)"),
                confidence=conf,
                node=ne.node,
                evidence=tuple(evidence),
                fix=f"on {ne.node}: sysctl -w net.ipv4.tcp_tw_recycle=0 and remove it from /etc/sysctl.d/",
                explains=(scope(nodes=[ne.node]),),
                detail="first connection works, later ones hang (SYN without SYN-ACK); intermittent",
            )
        )
    return out


RULE = Rule(cause=CAUSE, category="tcp_tw_recycle drops connections behind NAT", run=rule)
