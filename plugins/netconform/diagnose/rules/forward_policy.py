"""filter FORWARD drops pod traffic (docker sets the policy to DROP; nothing ACCEPTs the pod CIDR)."""

from __future__ import annotations

from ..evidence import ClusterEvidence
from ..iptables import Packet, evaluate
from ..model import Finding, scope
from ._rule import Rule
from ._util import host_in, overlay_pairs, quote_rule

CAUSE = "forward-drop"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, nf, peer, mine, theirs in overlay_pairs(ev):
        for pkt, way in (
            (Packet(mine, theirs, "tcp", 8080, in_iface="cni0", out_iface="flannel.1"), "to"),
            (Packet(theirs, mine, "tcp", 8080, in_iface="flannel.1", out_iface="cni0"), "from"),
        ):
            v = evaluate(ev.nodes[ne.node].tables, "filter", "FORWARD", pkt)
            if v.target not in ("DROP", "REJECT"):
                continue
            if v.rule is None:
                chain = ne.tables.get("filter", {}).get("FORWARD")
                line = f"{v.policy_line}" + (
                    f" ({chain.packets} pkts dropped by policy)" if chain and chain.packets else ""
                )
                what = "policy DROP and no rule accepts pod traffic"
                fix = (
                    f"on {ne.node}: iptables -A FORWARD -s {ev.facts.cluster_cidr or '<cluster pod CIDR>'} -j ACCEPT "
                    f"&& iptables -A FORWARD -d {ev.facts.cluster_cidr or '<cluster pod CIDR>'} -j ACCEPT "
                    "(or run flanneld, which adds FLANNEL-FWD)"
                )
            else:
                line, what = quote_rule(v.rule), "a rule drops pod traffic"
                fix = f"on {ne.node}: iptables -D {v.rule.raw[3:]}"
            scopes = [scope(nodes=[ne.node], cross_node=True)]
            # with bridge-nf-call-iptables=1 pod->pod on the same bridge passes FORWARD as well
            same = Packet(mine, host_in(nf.pod_cidr, 3) or mine, "tcp", 8080, in_iface="cni0", out_iface="cni0")
            if ne.sysctl.get("net.bridge.bridge-nf-call-iptables") == "1" and evaluate(
                ne.tables, "filter", "FORWARD", same
            ).target in ("DROP", "REJECT"):
                scopes.append(scope(src_nodes=[ne.node], dst_nodes=[ne.node]))
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"{ne.node} FORWARD chain drops pod traffic {way} {peer.name} ({what})",
                    confidence=0.9,
                    node=ne.node,
                    evidence=(
                        f"{ne.node}$ iptables-save -t filter: {line}",
                        f"packet {pkt.src} -> {pkt.dst} in {pkt.in_iface} out {pkt.out_iface}: {v.target}",
                    ),
                    fix=fix,
                    explains=tuple(scopes),
                )
            )
            break
        else:
            continue
        break
    return out


RULE = Rule(cause=CAUSE, category="FORWARD chain drops pod traffic", run=rule)
