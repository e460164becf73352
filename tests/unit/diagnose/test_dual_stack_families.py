"""A fault in one family explains that family's failures, on every path through the broken node
(issue 17 item 3: a stale flannel-v6.1 neighbour explained the IPv6 pod-to-pod failures, not the IPv6
ClusterIP ones, while over IPv4 the same fault explains every Service path).

The lab is IPv4 today, so this replays the dual-stack recording (nftables-vxlan-dual/kube-proxy-down,
tests/data/recorded/variants): its real IPv6 ClusterIP, NodePort and stability paths, its real neighbour
table on lab-node-2 with the one line a stale flannel-v6.1 entry changes (the MAC `ci/lab fault stale-arp`
writes on flannel.1), and each Service's IPv6 ClusterIP as lab-node-1's recorded `ip6 kube-proxy`
table maps it (the recording predates facts.json's `cluster_ips`, which is where the API's clusterIPs go).
"""

from __future__ import annotations

import dataclasses

from netconform.diagnose import correlate
from netconform.diagnose.evidence import ClusterEvidence, Section
from netconform.diagnose.model import Finding
from netconform.diagnose.rules import run_rules
from netconform.dialing.path import PathInfo, read_paths

from .test_variants_recorded import load

CASE = ("nftables-vxlan-dual", "kube-proxy-down")
STALE_MAC = "ee:ee:ee:00:00:01"  # ci/lablib/faults.py STALE_MAC: what a re-created device leaves behind


def _with_v6_cluster_ips(ev: ClusterEvidence) -> None:
    """Each Service's IPv6 ClusterIP from lab-node-1's recorded `ip6 kube-proxy` service-ips map."""
    table = ev.nodes["lab-node-1"].nft.kube_proxy["ip6"]
    for key, svc in list(ev.facts.services.items()):
        # chain names: service-<hash>-<namespace>/<name>/<proto>/<port name>
        ips = {e.key[0] for e in table.maps["service-ips"] if f"-{key}/" in e.chain}
        if ips:
            ev.facts.services[key] = dataclasses.replace(svc, cluster_ips=(svc.cluster_ip or "", *sorted(ips)))


def _stale_v6_neighbour(ev: ClusterEvidence, node: str, peer: str) -> str:
    """lab-node-2's recorded `ip neigh show` with its flannel-v6.1 entry for `peer` pointing at a stale MAC."""
    gw, want = ev.facts.nodes[peer].subnet_gw_v6, ev.facts.nodes[peer].vtep_mac_v6
    s = ev.nodes[node].sections["neigh"]
    line = f"{gw} dev flannel-v6.1 lladdr {want} PERMANENT"
    assert line in [x.rstrip() for x in s.text.splitlines()]  # as recorded
    ev.nodes[node].sections["neigh"] = Section("neigh", s.rc, s.text.replace(line, line.replace(want or "", STALE_MAC)))
    ev.nodes[node].__dict__.pop("neigh_all", None)  # parsed lazily: drop what an earlier read cached
    return line


def _stale_finding(ev: ClusterEvidence) -> Finding:
    (f,) = [f for f in run_rules(ev) if f.cause == "stale-flannel-arp"]
    return f


def _recorded_paths(paths: dict[str, list[dict[str, object]]]) -> dict[str, PathInfo]:
    out = {}
    for nodeid, props in paths.items():
        for p in correlate.failed_paths(read_paths([("netconform_path", p) for p in props])):
            out[nodeid.split("::", 1)[1]] = p
    return out


def test_recorded_facts_lack_the_v6_cluster_ip_and_that_left_the_path_without_a_backend_node() -> None:
    # the cause: facts knew only spec.clusterIP (the IPv4 one), so an IPv6 ClusterIP path had no endpoint
    # hop at all (src -> unknown), and no overlay finding can explain a hop without a far end
    ev, paths = load(*CASE)
    p = _recorded_paths(paths)["test_clusterip_tcp_reaches_every_backend[ipv6-from-lab-node-2]"]
    assert p.target_ip.startswith("fd10:96::")
    assert ev.facts.service_by_ip(p.target_ip) is None
    assert [(h.src, h.dst) for h in correlate.hops_for(p, ev.facts)] == [("lab-node-2", None)]
    _with_v6_cluster_ips(ev)
    assert ev.facts.service_by_ip(p.target_ip) is ev.facts.services[f"{ev.facts.probe_services[0]}"]
    assert {h.dst for h in correlate.hops_for(p, ev.facts)} == {"lab-node-1", "lab-node-2", "lab-node-3"}


def test_stale_v6_neighbour_explains_the_ipv6_service_and_nodeport_paths_through_the_node() -> None:
    ev, paths = load(*CASE)
    _with_v6_cluster_ips(ev)
    _stale_v6_neighbour(ev, "lab-node-2", "lab-node-1")
    f = _stale_finding(ev)
    assert f.node == "lab-node-2" and "flannel-v6.1" in f.title and STALE_MAC in f.title
    by_id = _recorded_paths(paths)
    v6 = {
        "test_clusterip_tcp_reaches_every_backend[ipv6-from-lab-node-2]",
        "test_clusterip_udp_reaches_every_backend[ipv6-from-lab-node-2]",
        "test_clusterip_connections_all_succeed[ipv6-from-lab-node-2]",
        "test_nodeport_from_pod[ipv6-lab-node-1-to-lab-node-2]",
        "test_nodeport_from_pod[ipv6-lab-node-3-to-lab-node-2]",
        "test_nodeport_connections_all_succeed[ipv6-from-lab-node-1]",
    }
    assert v6 <= set(by_id)
    assert {n for n in v6 if not correlate.explains(f, by_id[n], ev.facts)} == set()


def test_a_stale_neighbour_of_one_family_explains_no_path_of_the_other() -> None:
    # flannel-v6.1 carries IPv6 pod traffic only: the IPv4 twins of the same paths are another fault's
    ev, paths = load(*CASE)
    _with_v6_cluster_ips(ev)
    _stale_v6_neighbour(ev, "lab-node-2", "lab-node-1")
    f = _stale_finding(ev)
    by_id = _recorded_paths(paths)
    v4 = [
        "test_clusterip_udp_reaches_every_backend[ipv4-from-lab-node-2]",
        "test_clusterip_connections_all_succeed[ipv4-from-lab-node-2]",
        "test_nodeport_from_pod[ipv4-lab-node-1-to-lab-node-2]",
    ]
    assert [n for n in v4 if correlate.explains(f, by_id[n], ev.facts)] == []


def test_cluster_ips_survive_the_record_and_replay() -> None:
    from netconform.diagnose.facts_record import facts_from_dict, facts_to_dict

    ev, _ = load(*CASE)
    _with_v6_cluster_ips(ev)
    again = facts_from_dict(facts_to_dict(ev.facts))
    assert {k: s.all_cluster_ips for k, s in again.services.items()} == {
        k: s.all_cluster_ips for k, s in ev.facts.services.items()
    }
    assert all(len(s.all_cluster_ips) == 2 for s in again.services.values())
