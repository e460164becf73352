"""`nft -j list ruleset` as kube-proxy's nftables mode leaves it, read by diagnose.nftables.

tests/data/recorded/variants/nft-ruleset-lab-node-1.json: the real output on lab-node-1 of the lab's
nftables variant (`ci/lab up --proxy-mode nftables`, Kubernetes v1.37.2) while a suite run was live:
iptables-nft's tables (flannel) beside `ip kube-proxy` / `ip6 kube-proxy`.
"""

from __future__ import annotations

from pathlib import Path

from netconform.diagnose.nftables import parse_ruleset

RULESET = Path(__file__).resolve().parents[2] / "data" / "recorded" / "variants" / "nft-ruleset-lab-node-1.json"


def test_tables_and_the_kube_proxy_tables_of_both_families() -> None:
    rs = parse_ruleset(RULESET.read_text())
    assert rs.error is None
    assert ("ip", "kube-proxy") in rs.tables and ("ip6", "kube-proxy") in rs.tables and ("ip", "nat") in rs.tables
    assert set(rs.kube_proxy) == {"ip", "ip6"}
    assert rs.kube_proxy["ip6"].maps["service-ips"] == []  # an IPv4 lab: the ip6 table is there, empty


def test_service_map_element_and_its_endpoints() -> None:
    t = parse_ruleset(RULESET.read_text()).kube_proxy["ip"]
    dns = t.service("10.96.0.10", "UDP", 53)
    assert dns is not None
    assert dns.chain == "service-FY5PMXPG-kube-system/kube-dns/udp/dns"
    assert dns.raw == "10.96.0.10 . udp . 53 : goto service-FY5PMXPG-kube-system/kube-dns/udp/dns"
    # `dnat ip to numgen random mod 2 map { 0 : 10.244.0.2 . 53, 1 : 10.244.2.2 . 53 }`
    assert t.dnat_targets(dns.chain) == {"10.244.0.2", "10.244.2.2"}
    api = t.service("10.96.0.1", "tcp", 443)
    assert api is not None and t.dnat_targets(api.chain) == {"10.99.0.1"}  # `dnat to 10.99.0.1:6443`
    assert t.service("10.96.0.10", "tcp", 54) is None


def test_nodeport_follows_goto_into_the_service_and_local_chains() -> None:
    t = parse_ruleset(RULESET.read_text()).kube_proxy["ip"]
    local = t.nodeport("tcp", 30779)  # nc-nodeport-local (eTP=Local): external- -> service- and local-
    assert local is not None and local.chain.startswith("external-3H3RLTX7-")
    assert "10.244.0.5" in t.dnat_targets(local.chain)
    assert t.nodeport("tcp", 30780) is None
    assert t.sets["nodeport-ips"] == ["10.99.0.11"]


def test_not_json_and_empty() -> None:
    assert parse_ruleset("").error is None and not parse_ruleset("").has_kube_proxy
    assert parse_ruleset("nft: command not found").error == "no JSON in the output"
    assert parse_ruleset('{"nftables": [{"metainfo": {"version": "1.0.6"}}]}').tables == []
