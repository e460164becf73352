"""A probe Service (or kube-dns) has no ready endpoints: immediate refused/REJECT."""

from __future__ import annotations

from netconform.checks import NODEPORT, SERVICE, SOURCE_IP, STABILITY

from ..evidence import ClusterEvidence
from ..iptables import rules_in
from ..model import Finding, scope
from ._rule import Rule
from ._util import inspected, quote_rule

CAUSE = "service-no-endpoints"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for key in ev.facts.probe_services:
        svc = ev.facts.services.get(key)
        if svc is None or svc.ready_endpoints:
            continue
        evidence = [
            f"API: {key} (clusterIP {svc.cluster_ip}) EndpointSlices list {len(svc.endpoints)} endpoints, 0 ready"
        ]
        for ne, _ in inspected(ev):
            for r in rules_in(ne.tables, "filter"):
                if "has no endpoints" in r.comment and key in r.comment:
                    evidence.append(f"{ne.node}$ iptables-save -t filter: {quote_rule(r)}")
                    break
        ports = [p.port for p in svc.ports] + [p.node_port for p in svc.ports if p.node_port]
        out.append(
            Finding(
                cause=CAUSE,
                title=f"Service {key} has no ready endpoints",
                confidence=0.95,
                node=None,
                evidence=tuple(evidence),
                fix=f"kubectl -n {svc.namespace} get endpointslices -l kubernetes.io/service-name={svc.name}; "
                "fix the selector or the pods' readiness",
                explains=(scope(checks=[SERVICE, NODEPORT, STABILITY, SOURCE_IP], target_ports=ports),),
            )
        )
    return out


RULE = Rule(cause=CAUSE, category="Service without ready endpoints", run=rule)
