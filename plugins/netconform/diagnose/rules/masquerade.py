"""Seed 3: a MASQUERADE/SNAT rule catches pod->pod overlay traffic (dockerd --ip-masq).

The server then sees the client node's flannel.1 address (x.x.x.0) instead of
the pod IP. We walk nat POSTROUTING for a real pod->pod packet, so flanneld's
own MASQUERADE rules, which RETURN for pod->pod first, do not count, and a rule
appended after flanneld's chain still does (RETURN goes back to POSTROUTING).
"""

from __future__ import annotations

from netconform.checks import SOURCE_IP

from ..datapath import datapath
from ..evidence import ClusterEvidence
from ..iptables import Packet, evaluate
from ..model import Finding, scope
from ._rule import FLANNEL, Rule
from ._util import node_ip, overlay_pairs, quote_rule

CAUSE = "masquerade-overlay"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    routed = datapath(ev).backend == "host-gw"  # no overlay device: pods' packets leave through the uplink
    for ne, nf, peer, mine, theirs in overlay_pairs(ev):
        dev = "flannel.1"
        if routed:
            dev = next((r.dev for r in ne.routes if r.dst == peer.pod_cidr and r.dev), None) or "eth0"
        pkt = Packet(mine, theirs, "tcp", 8080, in_iface="cni0", out_iface=dev)
        v = evaluate(ne.tables, "nat", "POSTROUTING", pkt)
        if v.target not in ("MASQUERADE", "SNAT") or v.rule is None:
            continue
        evidence = [
            f"{ne.node}$ iptables-save -t nat: {quote_rule(v.rule)}",
            f"pod {mine} -> pod {theirs} out {dev} reaches {v.rule.chain}: {v.target}",
        ]
        docker = ne.line_of("flannel_docker", lambda s: "ip-masq=true" in s and "IPMASQ" in s)
        if docker:
            evidence.append(f"{ne.node}$ cat /run/flannel/docker: {docker}")
        gw = (node_ip(nf) if routed else nf.subnet_gw) or "x.x.x.0"
        network = ev.facts.cluster_cidr or ne.subnet_env.get("FLANNEL_NETWORK") or "<cluster pod CIDR>"
        exclude = f"! -d {network}" if routed else "! -o flannel.1"
        out.append(
            Finding(
                cause=CAUSE,
                title=f"{ne.node} masquerades pod->pod {'' if routed else 'overlay '}traffic: servers see {gw} ({dev}), "
                "not the pod IP",
                confidence=0.95,
                node=ne.node,
                evidence=tuple(evidence),
                fix=f"on {ne.node}: iptables -t nat -D {v.rule.raw[3:]}; keep egress SNAT but exclude the overlay "
                f"(seed fix: -A POSTROUTING -s {nf.pod_cidr} ! -o cni0 -j NC-MASQ1; -A NC-MASQ1 {exclude} -j MASQUERADE), "
                "or run dockerd with --ip-masq=false and flanneld with --ip-masq",
                explains=(scope(checks=[SOURCE_IP], src_nodes=[ne.node], cross_node=True),),
            )
        )
        break
    return out


# flannel's devices (cni0, flannel.1 or the host-gw route): on another CNI (Cilium: its own
# `! -o cilium_+ -j MASQUERADE`, BPF tunnelling) this walk would judge a packet that never exists
RULE = Rule(cause=CAUSE, applies=FLANNEL, category="Pod traffic masqueraded across nodes (source IP lost)", run=rule)
