"""iptables-save parsing and chain evaluation on recorded rule sets."""

from netconform.diagnose.iptables import Packet, evaluate, merge_tables, parse_iptables_save

from .conftest import load_case

POD1, POD2 = "10.244.1.2", "10.244.2.2"


def test_counters_and_policies_parsed():
    t = load_case("forward_drop").nodes["lab-node-1"].tables
    fwd = t["filter"]["FORWARD"]
    assert fwd.policy == "DROP" and fwd.packets and fwd.packets > 0
    assert any(r.target == "KUBE-FORWARD" for r in fwd.rules)


def test_flannel_returns_pod_to_pod_before_its_masquerade(healthy):
    t = healthy.nodes["lab-node-1"].tables
    v = evaluate(t, "nat", "POSTROUTING", Packet(POD1, POD2, out_iface="flannel.1", in_iface="cni0"))
    assert v.target == "ACCEPT" and v.rule is None
    # the same chain does masquerade egress out of the cluster
    v = evaluate(t, "nat", "POSTROUTING", Packet(POD1, "198.51.100.7", out_iface="eth0"))
    assert v.target == "MASQUERADE" and "flanneld masq" in v.rule.raw


def test_rule_appended_after_flannel_chain_still_catches():
    t = load_case("masquerade_late").nodes["lab-node-1"].tables
    v = evaluate(t, "nat", "POSTROUTING", Packet(POD1, POD2, out_iface="flannel.1"))
    assert v.target == "MASQUERADE" and v.rule.raw == "-A POSTROUTING -s 10.244.1.0/24 ! -o cni0 -j MASQUERADE"


def test_kube_mark_masq_sets_mark_so_kube_postrouting_masquerades(healthy):
    t = healthy.nodes["lab-node-1"].tables
    v = evaluate(t, "nat", "POSTROUTING", Packet(POD1, POD2, out_iface="flannel.1", mark=0x4000))
    assert v.target == "MASQUERADE" and "requiring SNAT" in v.rule.raw


def test_merge_keeps_drop_policy_from_either_backend():
    a = parse_iptables_save("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", "nft")
    b = parse_iptables_save("*filter\n:FORWARD DROP [5:300]\n-A FORWARD -s 10.0.0.0/8 -j ACCEPT\nCOMMIT\n", "legacy")
    m = merge_tables([a, b])
    assert m["filter"]["FORWARD"].policy == "DROP" and len(m["filter"]["FORWARD"].rules) == 1
    assert evaluate(m, "filter", "FORWARD", Packet("192.0.2.1", "192.0.2.2")).target == "DROP"


def test_unknown_match_is_skipped_and_reported():
    t = parse_iptables_save("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m physdev --physdev-in x -j DROP\nCOMMIT\n")
    v = evaluate(t, "filter", "INPUT", Packet("1.1.1.1", "2.2.2.2"))
    assert v.target == "ACCEPT" and len(v.uncertain) == 1


def test_syn_only_drop_of_the_nodeport_range_catches_new_connections():
    """`iptables -I PREROUTING -p tcp --dport 30000:32767 --syn -j DROP`, as iptables-save prints it."""
    t = parse_iptables_save(
        "*raw\n:PREROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -p tcp -m tcp --dport 30000:32767 --tcp-flags FIN,SYN,RST,ACK SYN -j DROP\nCOMMIT\n"
    )
    v = evaluate(t, "raw", "PREROUTING", Packet("10.99.0.1", "10.99.0.12", dport=30759))
    assert v.target == "DROP" and "--tcp-flags" in v.rule.raw
    assert evaluate(t, "raw", "PREROUTING", Packet("10.99.0.1", "10.99.0.12", dport=8080)).target == "ACCEPT"
