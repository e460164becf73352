"""kube-proxy's rules missing or stale for the probe Services and kube-dns, in the mode that runs:
iptables (nat KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP DNAT) or nftables (table ip/ip6 kube-proxy:
map service-ips -> service chain -> DNAT). Other modes (IPVS) and kube-proxy replacements are not
judged (datapath.not_covered says so once)."""

from __future__ import annotations

import ipaddress
import re

from netconform.checks import DNS, HAIRPIN, MTU, NODEPORT, SERVICE, SOURCE_IP, STABILITY

from .. import iptables
from ..datapath import datapath
from ..evidence import ClusterEvidence, NodeEvidence
from ..facts import ServiceFacts
from ..iptables import rules_in
from ..model import Finding, Scope, scope
from ..nftables import KubeProxyTable
from ._rule import Rule
from ._util import inspected

CAUSE = "kube-proxy-rules-missing"


def _svc_checks(svc: ServiceFacts, dns_key: str) -> list[str]:
    return [DNS] if svc.key == dns_key else [SERVICE, STABILITY, SOURCE_IP, HAIRPIN, MTU]


def _whole_node(node: str) -> tuple[Scope, ...]:
    return (
        scope(checks=[SERVICE, DNS, STABILITY, SOURCE_IP, HAIRPIN, MTU], src_nodes=[node]),
        scope(checks=[NODEPORT], dst_nodes=[node], underlay_only=True),
    )


def rule(ev: ClusterEvidence) -> list[Finding]:
    mode = datapath(ev).proxy
    if mode not in ("iptables", "nftables"):
        return []
    out: list[Finding] = []
    services = [s for k, s in ev.facts.services.items() if k in ev.facts.probe_services or k == ev.facts.dns_service]
    for ne, _ in inspected(ev):
        if mode == "nftables":
            out += _nftables(ev, ne, services)
        else:
            out += _iptables(ev, ne, services)
    return out


def _judged(svc: ServiceFacts, node: str) -> bool:
    return bool(svc.cluster_ip and svc.cluster_ip != "None" and svc.endpoints_for(node))


def _finding(
    ev: ClusterEvidence, ne: NodeEvidence, svc: ServiceFacts, port: int, proto: str, node_port: int | None,
    problems: list[str], where: str,
) -> Finding:  # fmt: skip
    scopes = [
        scope(
            checks=_svc_checks(svc, ev.facts.dns_service),
            src_nodes=[ne.node],
            target_ports=None if svc.key == ev.facts.dns_service else [port],
        )
    ]
    if node_port:
        scopes.append(scope(checks=[NODEPORT], dst_nodes=[ne.node], target_ports=[node_port], underlay_only=True))
    return Finding(
        cause=CAUSE,
        title=f"{ne.node}: kube-proxy rules for {svc.key}:{port}/{proto.upper()} "
        f"are {'stale' if problems[0].startswith('stale') else 'missing'}",
        confidence=0.9,
        node=ne.node,
        evidence=tuple(f"{ne.node}$ {where}: {p}" for p in problems) + _pods(ev, ne.node),
        fix=f"on {ne.node}: restart kube-proxy (it rewrites every rule) and check its logs",
        explains=tuple(scopes),
    )


# ---------------------------------------------------------------- iptables mode


def _iptables(ev: ClusterEvidence, ne: NodeEvidence, services: list[ServiceFacts]) -> list[Finding]:
    if not ne.has("iptables"):
        return []
    if "KUBE-SERVICES" not in ne.tables.get("nat", {}):
        return [
            Finding(
                cause=CAUSE,
                title=f"{ne.node} has no kube-proxy rules at all (no KUBE-SERVICES chain in nat)",
                confidence=0.9,
                node=ne.node,
                evidence=(f"{ne.node}$ iptables-save -t nat: (no :KUBE-SERVICES chain)",) + _pods(ev, ne.node),
                fix=f"on {ne.node}: restart kube-proxy and check its logs",
                explains=_whole_node(ne.node),
            )
        ]
    out = []
    rules = rules_in(ne.tables, "nat")
    for svc in (s for s in services if _judged(s, ne.node)):
        for port in svc.ports:
            problems = _check_port(rules, svc, ne.node, port.port, port.protocol.lower(), port.node_port)
            if problems:
                out.append(
                    _finding(ev, ne, svc, port.port, port.protocol, port.node_port, problems, "iptables-save -t nat")
                )
    return out


def _check_port(
    rules: list[iptables.Rule], svc: ServiceFacts, node: str, port: int, proto: str, node_port: int | None
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
    want = {e.ip for e in svc.endpoints_for(node) if ":" not in e.ip}  # iptables-save: IPv4 only
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


# ---------------------------------------------------------------- nftables mode


def _family(ip: str) -> str:
    return "ip6" if ipaddress.ip_address(ip).version == 6 else "ip"


def _nftables(ev: ClusterEvidence, ne: NodeEvidence, services: list[ServiceFacts]) -> list[Finding]:
    if not ne.has("nft"):
        return []  # nft could not be read there: no verdict (the section's problem is a gap, not a cause)
    judged = [s for s in services if _judged(s, ne.node)]
    families = sorted({_family(s.cluster_ip or "") for s in judged}) or ["ip"]
    out = []
    for fam in families:
        table = ne.nft.kube_proxy.get(fam)
        if table is None or not any(table.chains.values()):
            if table is None:
                shown = f"(no table {fam} kube-proxy)"
            else:
                kept = table.maps.get("service-ips", [])
                shown = f"table {fam} kube-proxy: {len(table.chains)} chains, none with a rule" + (
                    f"; map service-ips still holds {len(kept)} elements (first: {kept[0].raw})" if kept else ""
                )
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"{ne.node} has no kube-proxy rules at all ({'no' if table is None else 'empty'} table "
                    f"{fam} kube-proxy)",
                    confidence=0.9,
                    node=ne.node,
                    evidence=(f"{ne.node}$ nft -j list ruleset: {shown}",) + _pods(ev, ne.node),
                    fix=f"on {ne.node}: restart kube-proxy and check its logs",
                    explains=_whole_node(ne.node),
                )
            )
            continue
        for svc in judged:
            if _family(svc.cluster_ip or "") != fam:
                continue
            for port in svc.ports:
                problems = _check_nft(table, svc, ne.node, port.port, port.protocol.lower(), port.node_port)
                if problems:
                    out.append(
                        _finding(
                            ev, ne, svc, port.port, port.protocol, port.node_port, problems,
                            f"nft list table {fam} kube-proxy",
                        )
                    )  # fmt: skip
    return out


def _check_nft(
    t: KubeProxyTable, svc: ServiceFacts, node: str, port: int, proto: str, node_port: int | None
) -> list[str]:
    ip = svc.cluster_ip or ""
    entry = t.service(ip, proto, port)
    want = {str(ipaddress.ip_address(e.ip)) for e in svc.endpoints_for(node) if ":" in e.ip or "." in e.ip}
    want = {w for w in want if _family(w) == t.family}
    problems = []
    if entry is None:
        dead = t.no_endpoints(ip, proto, port)
        problems.append(
            f"no element {ip} . {proto} . {port} in map service-ips ({svc.key})"
            + (f"; it is in no-endpoint-services: {dead.raw}" if dead else "")
        )
    else:
        dnat_to = t.dnat_targets(entry.chain)
        if not dnat_to:
            problems.append(
                f"service-ips {entry.raw}, but chain {entry.chain} DNATs to nothing "
                f"(endpoints: {', '.join(sorted(want))})"
            )
        else:
            missing, stale = want - dnat_to, dnat_to - want
            if missing:
                problems.append(f"no DNAT to {', '.join(sorted(missing))} in {entry.chain} ({svc.key})")
            if stale:
                problems.append(
                    f"stale DNAT to {', '.join(sorted(stale))} in {entry.chain} (not an endpoint of {svc.key})"
                )
    if node_port:
        np = t.nodeport(proto, node_port)
        if np is None:
            problems.append(f"no element {proto} . {node_port} in map service-nodeports ({svc.key})")
        elif not t.dnat_targets(np.chain):
            problems.append(f"service-nodeports {np.raw}, but chain {np.chain} DNATs to nothing ({svc.key})")
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


RULE = Rule(cause=CAUSE, category="kube-proxy rules missing on a node", run=rule)
