"""VXLAN (UDP 8472 by default) dropped by the host firewall, or peers using different VXLAN ports.

The same on flannel (flannel.1) and on Cilium's VXLAN tunnel (cilium_vxlan, an external-mode device without
dev/local of its own: the uplink is the interface holding the node's InternalIP). Cilium's datapath is BPF,
but the encapsulated UDP still enters and leaves through the host's netfilter like flannel's.
"""

from __future__ import annotations

from ..evidence import ClusterEvidence, NodeEvidence
from ..iptables import Packet, evaluate
from ..model import Finding, scope
from ..parsers import Link
from ._rule import VXLAN_TUNNEL, Rule
from ._util import device_of, inspected, node_ip, quote_rule, underlay

CAUSE = "vxlan-port-blocked"
DROPS = ("DROP", "REJECT")
TUNNEL_DEVICES = ("flannel.1", "cilium_vxlan")
# who sets the tunnel's port, per device: where the port-mismatch fix points
PORT_SETTING = {
    "flannel.1": "use one flannel net-conf (Backend.Port) on every node and restart flanneld",
    "cilium_vxlan": "use one tunnel-port in the cilium-config ConfigMap on every node and restart the cilium agents",
}


def tunnel_device(ne: NodeEvidence) -> Link | None:
    """The node's VXLAN tunnel device: flannel's or Cilium's."""
    return next((ne.links[d] for d in TUNNEL_DEVICES if d in ne.links), None)


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, nf in inspected(ev):
        fl = tunnel_device(ne)
        if fl is None or not ne.has("iptables"):
            continue
        port = int(fl.details.get("dstport", "8472") or 8472)
        dev, local = underlay(ne)
        local = local or node_ip(nf)
        dev = dev or device_of(ne, local)
        for peer in ev.peers(ne.node):
            pip = node_ip(peer)
            if not pip or not local:
                continue
            checks = [
                ("raw", "PREROUTING", Packet(pip, local, "udp", port, in_iface=dev, dst_local=True), "in"),
                ("filter", "INPUT", Packet(pip, local, "udp", port, in_iface=dev, dst_local=True), "in"),
                ("filter", "OUTPUT", Packet(local, pip, "udp", port, out_iface=dev), "out"),
            ]
            for table, chain, pkt, way in checks:
                v = evaluate(ne.tables, table, chain, pkt)
                if v.target not in DROPS:
                    continue
                line = quote_rule(v.rule) if v.rule else f"{v.policy_line} (policy of {table}/{chain})"
                what = f"from {peer.name} ({pip})" if way == "in" else f"to {peer.name} ({pip})"
                out.append(
                    Finding(
                        cause=CAUSE,
                        title=f"{ne.node} drops VXLAN (udp/{port}) {what} in {table}/{chain}",
                        confidence=0.95,
                        node=ne.node,
                        evidence=(
                            f"{ne.node}$ iptables-save -t {table}: {line}",
                            f"{ne.node}$ ip -d link show {fl.name}: dstport {port}",
                        ),
                        fix=f"on {ne.node}: remove the rule (iptables -t {table} -D {v.rule.raw[3:]})"
                        if v.rule
                        else f"on {ne.node}: iptables -t {table} -I {chain} -p udp --dport {port} -j ACCEPT",
                        explains=(scope(nodes=[ne.node], cross_node=True, overlay_only=True),),
                    )
                )
                break
            else:
                continue
            break  # one finding per node is enough: it is the same rule for every peer
        # peers encapsulating to a different port never reach each other
        for peer in ev.peers(ne.node):
            pe = ev.nodes.get(peer.name)
            pfl = pe.links.get(fl.name) if pe and pe.error is None else None
            if pfl and pfl.details.get("dstport") and pfl.details.get("dstport") != fl.details.get("dstport"):
                out.append(
                    Finding(
                        cause=CAUSE,
                        title=f"{ne.node} and {peer.name} use different VXLAN ports "
                        f"({fl.details.get('dstport')} vs {pfl.details.get('dstport')})",
                        confidence=0.9,
                        node=ne.node,
                        evidence=(
                            f"{ne.node}$ ip -d link show {fl.name}: dstport {fl.details.get('dstport')}",
                            f"{peer.name}$ ip -d link show {fl.name}: dstport {pfl.details.get('dstport')}",
                        ),
                        fix=PORT_SETTING[fl.name],
                        explains=(scope(pairs=[(ne.node, peer.name)], cross_node=True, overlay_only=True),),
                    )
                )
    return out


RULE = Rule(cause=CAUSE, applies=VXLAN_TUNNEL, category="VXLAN port (UDP 8472) blocked", run=rule)
