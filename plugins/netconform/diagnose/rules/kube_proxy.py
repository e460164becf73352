"""kube-proxy (iptables mode) rules missing or stale for the probe Services and kube-dns."""

from __future__ import annotations

import re

from ..evidence import ClusterEvidence
from ..facts import ServiceFacts
from ..iptables import Rule, rules_in
from ..model import Finding, scope
from ._util import inspected

CAUSE = "kube-proxy-rules-missing"


def _svc_checks(svc: ServiceFacts, dns_key: str) -> list[str]:
    return ["dns"] if svc.key == dns_key else ["service", "stability", "source_ip"]


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    services = [s for k, s in ev.facts.services.items() if k in ev.facts.probe_services or k == ev.facts.dns_service]
    for ne, _ in inspected(ev):
        if not ne.has("iptables"):
            continue
        nat = ne.tables.get("nat", {})
        if "KUBE-SERVICES" not in nat:
            if "kube-ipvs0" in ne.links:
                continue  # IPVS mode: not ours to judge from iptables
            out.append(
                Finding(
                    CAUSE,
                    f"{ne.node} has no kube-proxy rules at all (no KUBE-SERVICES chain in nat)",
                    0.9,
                    ne.node,
                    (f"{ne.node}$ iptables-save -t nat: (no :KUBE-SERVICES chain)",) + _pods(ev, ne.node),
                    f"on {ne.node}: restart kube-proxy and check its logs",
                    (
                        scope(checks=["service", "dns", "stability", "source_ip"], src_nodes=[ne.node]),
                        scope(checks=["nodeport"], dst_nodes=[ne.node], underlay_only=True),
                    ),
                )
            )
            continue
        rules = rules_in(ne.tables, "nat")
        for svc in services:
            if not svc.cluster_ip or svc.cluster_ip == "None" or not svc.ready_endpoints:
                continue
            for port in svc.ports:
                problems = _check_port(ne.node, rules, svc, port.port, port.protocol.lower(), port.node_port)
                if not problems:
                    continue
                scopes = [
                    scope(
                        checks=_svc_checks(svc, ev.facts.dns_service),
                        src_nodes=[ne.node],
                        target_ports=None if svc.key == ev.facts.dns_service else [port.port],
                    )
                ]
                if port.node_port:
                    scopes.append(
                        scope(
                            checks=["nodeport"], dst_nodes=[ne.node], target_ports=[port.node_port], underlay_only=True
                        )
                    )
                out.append(
                    Finding(
                        CAUSE,
                        f"{ne.node}: kube-proxy rules for {svc.key}:{port.port}/{port.protocol} "
                        f"are {'stale' if problems[0].startswith('stale') else 'missing'}",
                        0.9,
                        ne.node,
                        tuple(f"{ne.node}$ iptables-save -t nat: {p}" for p in problems) + _pods(ev, ne.node),
                        f"on {ne.node}: restart kube-proxy (it rewrites every rule) and check its logs",
                        tuple(scopes),
                    )
                )
    return out


def _check_port(
    node: str, rules: list[Rule], svc: ServiceFacts, port: int, proto: str, node_port: int | None
) -> list[str]:
    entry = [
        r
        for r in rules
        if r.chain == "KUBE-SERVICES"
        and r.opt("-d") in (svc.cluster_ip, f"{svc.cluster_ip}/32")
        and r.opt("--dport") == str(port)
        and (r.opt("-p") or proto) == proto
    ]
    if not entry:
        return [f"no KUBE-SERVICES rule for {svc.cluster_ip}/32 {proto} dport {port} ({svc.key})"]
    svc_chain = entry[0].target or ""
    # kube-proxy >= 1.28 jumps straight to KUBE-SVC; older ones too, eTP=Local via KUBE-SVL
    seps = [r for r in rules if r.chain == svc_chain and (r.target or "").startswith("KUBE-SEP-")]
    want = {e.ip for e in svc.ready_endpoints}
    dnat_to: set[str] = set()
    for sep in {r.target for r in seps}:
        for r in rules:
            if r.chain == sep and r.target == "DNAT":
                m = re.match(r"^\[?([0-9a-fA-F.:]+?)\]?:\d+$", r.opt("--to-destination") or "")
                if m:
                    dnat_to.add(m.group(1))
    problems = []
    if not seps:
        problems.append(f"{entry[0].raw} -> {svc_chain} has no KUBE-SEP rule (endpoints: {', '.join(sorted(want))})")
    else:
        missing, stale = want - dnat_to, dnat_to - want
        if missing:
            problems.append(f"no KUBE-SEP DNAT to {', '.join(sorted(missing))} in {svc_chain} ({svc.key})")
        if stale:
            problems.append(f"stale KUBE-SEP DNAT to {', '.join(sorted(stale))} (not an endpoint of {svc.key})")
    if node_port and not any(r.chain == "KUBE-NODEPORTS" and r.opt("--dport") == str(node_port) for r in rules):
        problems.append(f"no KUBE-NODEPORTS rule for dport {node_port} ({svc.key})")
    return problems


def _pods(ev: ClusterEvidence, node: str) -> tuple[str, ...]:
    out = []
    for p in ev.facts.kube_proxy:
        if p.node == node and (not p.ready or p.reason):
            out.append(
                f"pod {p.namespace}/{p.name} on {node}: phase {p.phase}, ready {p.ready}, "
                f"restarts {p.restarts} {p.reason}".rstrip()
            )
    return tuple(out)
