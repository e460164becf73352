"""CoreDNS down / no kube-dns endpoints / crash-looping (e.g. plugin/loop)."""

from __future__ import annotations

from netconform.checks import DNS

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._rule import Rule

CAUSE = "coredns-down"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    dns = ev.facts.services.get(ev.facts.dns_service)
    bad = [p for p in ev.facts.coredns if not p.ready or p.reason in ("CrashLoopBackOff", "Error", "OOMKilled")]
    pod_lines = tuple(
        f"pod {p.namespace}/{p.name} on {p.node}: phase {p.phase}, ready {p.ready}, "
        f"restarts {p.restarts} {p.reason}".rstrip()
        for p in bad
    )
    if dns is None and not ev.facts.coredns:
        return out
    if dns is not None and not dns.ready_endpoints:
        out.append(
            Finding(
                cause=CAUSE,
                title=f"{ev.facts.dns_service} has no ready endpoints: every lookup fails",
                confidence=0.95,
                node=None,
                evidence=(
                    f"API: {ev.facts.dns_service} clusterIP {dns.cluster_ip}: {len(dns.endpoints)} endpoints, 0 ready",
                )
                + pod_lines,
                fix="kubectl -n kube-system logs -l k8s-app=kube-dns; fix CoreDNS (a crash with plugin/loop means "
                "resolv.conf points back at itself)",
                explains=(scope(checks=[DNS]),),
            )
        )
    elif bad:
        for p in bad:
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"CoreDNS pod {p.name} on {p.node} is not ready ({p.reason or p.phase})",
                    confidence=0.6,
                    node=p.node,
                    evidence=(
                        f"pod {p.namespace}/{p.name} on {p.node}: phase {p.phase}, ready {p.ready}, "
                        f"restarts {p.restarts} {p.reason}".rstrip(),
                    ),
                    fix=f"kubectl -n {p.namespace} logs {p.name} --previous",
                    explains=(scope(checks=[DNS]),),
                )
            )
    return out


RULE = Rule(cause=CAUSE, category="CoreDNS down or unreachable", run=rule)
