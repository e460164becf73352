"""Failed paths -> findings that explain them -> ranked causes."""

from netconform.diagnose import correlate
from netconform.diagnose.rules import run_rules
from netconform.dialing.path import PathInfo, read_paths

from .conftest import load_case


def p(check, src, dst=None, target="", error="timeout", seen=None):
    return PathInfo(check, src, dst, target, error, seen)


def test_stale_arp_explains_both_directions_and_services_but_not_same_node():
    ev = load_case("stale_arp")
    fs = run_rules(ev)
    facts = ev.facts
    yes = [
        p("pod_to_pod", "lab-node-1", "lab-node-2", "10.244.2.2:8080"),
        p("pod_to_pod", "lab-node-2", "lab-node-1", "10.244.1.2:8080"),
        p("service", "lab-node-1", None, "10.96.100.10:8080"),
        p("dns", "lab-node-1", None, "10.96.0.10:53", "dns"),
    ]  # CoreDNS sits on lab-node-2
    no = [
        p("pod_to_pod", "lab-node-1", "lab-node-1", "10.244.1.2:8080"),
        p("source_ip", "lab-node-2", "lab-node-2", "10.244.2.2:8080"),
    ]
    for path in yes:
        assert [f.cause for f in correlate.explaining(fs, [path], facts)] == ["stale-flannel-arp"], path
    for path in no:
        assert correlate.explaining(fs, [path], facts) == [], path


def test_masquerade_explains_only_cross_node_source_ip_from_its_node():
    ev = load_case("masquerade")
    fs = run_rules(ev)
    hit = p("source_ip", "lab-node-1", "lab-node-2", "10.244.2.2:8080", error="", seen="10.244.1.0")
    miss = p("source_ip", "lab-node-2", "lab-node-1", "10.244.1.2:8080", error="", seen="10.244.2.0")
    assert correlate.explaining(fs, [hit], ev.facts)[0].cause == "masquerade-overlay"
    assert correlate.explaining(fs, [miss], ev.facts) == []


def test_nodeport_hops_go_through_the_dialled_node():
    ev = load_case("nodeport_blocked")
    fs = run_rules(ev)
    hops = correlate.hops_for(p("nodeport", "lab-node-2", None, "192.0.2.11:31080"), ev.facts)
    assert hops[0].dst == "lab-node-1" and not hops[0].overlay
    assert correlate.explaining(fs, [p("nodeport", "lab-node-2", None, "192.0.2.11:31080")], ev.facts)
    # a pod on lab-node-1 dialling lab-node-2's NodePort passes lab-node-1's PREROUTING first (cni0 in):
    # the same DROP catches it (seen on the lab: nodeport-firewall fails lab-node-1 -> every node)
    assert correlate.explaining(fs, [p("nodeport", "lab-node-1", None, "192.0.2.12:31080")], ev.facts)
    assert not correlate.explaining(fs, [p("nodeport", "outside the cluster", None, "192.0.2.12:31080")], ev.facts)
    assert not correlate.explaining(fs, [p("nodeport", "lab-node-2", None, "192.0.2.12:31080")], ev.facts)


def test_rank_one_cause_many_failures():
    a = {"cause": "stale-flannel-arp", "node": "lab-node-1", "title": "t", "fix": "f", "confidence": 0.95}
    b = {"cause": "rp-filter-strict", "node": "lab-node-1", "title": "r", "fix": "", "confidence": 0.5}
    per = {f"t{i}": [a] for i in range(14)}
    per["t14"] = [b, a]
    per["t15"] = []
    groups, unexplained = correlate.rank(per)
    assert groups[0].key == ("stale-flannel-arp", "lab-node-1") and len(groups[0].failures) == 15
    assert "t14" in groups[0].primary and groups[1].primary == []
    assert unexplained == ["t15"]
    lines = correlate.summary_lines(groups, unexplained, 16)
    assert lines[0] == "stale-flannel-arp on lab-node-1 explains 15 failures: t"
    assert lines[-1].startswith("1 of 16 failures have no diagnosed cause")


def test_failed_paths_prefers_entries_with_errors():
    props = [
        (
            "netconform_path",
            {"check": "service", "src_node": "a", "dst_node": "b", "target": "1.2.3.4:80", "error": None},
        ),
        (
            "netconform_path",
            '{"check": "service", "src_node": "a", "dst_node": null, "target": "1.2.3.4:80", "error": "timeout"}',
        ),
        ("other", 1),
    ]
    paths = correlate.failed_paths(read_paths(props))
    assert len(paths) == 1 and paths[0].error == "timeout" and paths[0].target_port == 80
