"""A host firewall drops the NodePort range before kube-proxy's DNAT (raw/mangle/nat PREROUTING)."""

from __future__ import annotations

from netconform.checks import HAIRPIN, NODEPORT, STABILITY

from ..evidence import ClusterEvidence
from ..iptables import Packet, evaluate
from ..model import Finding, scope
from ._rule import Rule
from ._util import host_in, inspected, node_ip, quote_rule, underlay

CAUSE = "nodeport-blocked"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    ports = sorted(
        {
            p.node_port
            for k in ev.facts.probe_services
            for p in ev.facts.services[k].ports
            if k in ev.facts.services and p.node_port
        }
    ) or [30000]
    for ne, nf in inspected(ev):
        if not ne.has("iptables"):
            continue
        dev, local = underlay(ne)
        local = local or node_ip(nf)
        peer = next((node_ip(p) for p in ev.peers(ne.node) if node_ip(p)), "192.0.2.1")
        if not local:
            continue
        for port in ports:
            pkt = Packet(peer or "192.0.2.1", local, "tcp", port, in_iface=dev, dst_local=True)
            hit = None
            for table in ("raw", "mangle", "nat"):
                v = evaluate(ne.tables, table, "PREROUTING", pkt)
                if v.target in ("DROP", "REJECT"):
                    hit = (table, v)
                    break
            if hit is None:
                continue
            table, v = hit
            line = quote_rule(v.rule) if v.rule else f"{v.policy_line} (policy)"
            scopes = [scope(checks=[NODEPORT], dst_nodes=[ne.node], underlay_only=True)]
            # pods of this node dial other nodes' NodePorts through this node's PREROUTING too
            pod = host_in(nf.pod_cidr if nf else None, 5)
            if pod and any(
                evaluate(
                    ne.tables, t, "PREROUTING", Packet(pod, peer or "192.0.2.1", "tcp", port, in_iface="cni0")
                ).target
                in ("DROP", "REJECT")
                for t in ("raw", "mangle", "nat")
            ):
                scopes.append(scope(checks=[NODEPORT], src_nodes=[ne.node], underlay_only=True))
                # the same match drops what this node's pods send back to a masqueraded connection whose
                # source port (--random-fully) fell in the range: a lone lost connection among a stability run's
                # NodePort connections to a backend here, and the hairpin connection of a pod to itself (masqueraded to cni0's address)
                scopes.append(scope(checks=[STABILITY], dst_nodes=[ne.node], overlay_only=True))
                scopes.append(scope(checks=[HAIRPIN], src_nodes=[ne.node]))
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"{ne.node} drops NodePort tcp/{port} in {table}/PREROUTING, before kube-proxy's DNAT",
                    confidence=0.9,
                    node=ne.node,
                    evidence=(f"{ne.node}$ iptables-save -t {table}: {line}",),
                    fix=f"on {ne.node}: iptables -t {table} -D {v.rule.raw[3:]} (open 30000-32767 to the cluster)"
                    if v.rule
                    else f"on {ne.node}: accept tcp 30000:32767 in {table}/PREROUTING",
                    explains=tuple(scopes),
                )
            )
            break
    return out


RULE = Rule(cause=CAUSE, category="NodePort range blocked by a host firewall", run=rule)
