"""The node x node picture: cells from test reports, colours, cause names, SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from netconform.reporting import matrix as mx

NODES = ["lab-node-1", "lab-node-2", "lab-node-3"]
SVG = "{http://www.w3.org/2000/svg}"


def path(check: str, src: str, dst: str | None, error: str | None = None) -> dict:
    """The shape DialResult.path_info() puts on every report (dialing.path)."""
    return {
        "check": check,
        "src_node": src,
        "src_pod": f"nc-client-{src[-1]}",
        "src_ip": "10.244.1.5",
        "dst_node": dst,
        "target": "10.244.2.7:8080",
        "proto": "tcp",
        "error": error,
        "seen_ip": None,
    }


def stale_arp_run(bad: str = "lab-node-2") -> list[mx.Record]:
    """pod_to_pod over every ordered pair; every cross-node pair touching `bad` times out (docs/faults.md #1)."""
    records = []
    for src in NODES:
        for dst in NODES:
            broken = src != dst and bad in (src, dst)
            records += mx.records_from_report(
                f"suites/test_pod_to_pod.py::test_tcp[{src}-to-{dst}]",
                "failed" if broken else "passed",
                [path("pod_to_pod", src, dst, "timeout" if broken else None)],
                [f"stale-flannel-arp@{bad}"] if broken else [],
            )
        records += mx.records_from_report(f"suites/test_dns.py::test[{src}]", "passed", [path("dns", src, None)], [])
    return records


def test_stale_arp_paints_the_nodes_row_and_column_red_with_the_cause() -> None:
    m = mx.build(NODES, stale_arp_run())
    for src in NODES:
        for dst in NODES:
            want = "failed" if src != dst and "lab-node-2" in (src, dst) else "passed"
            assert m.outcome("pod_to_pod", src, dst) == want, (src, dst)
    assert m.cells["pod_to_pod"][("lab-node-1", "lab-node-2")].label == "stale-flannel-arp"
    assert m.outcome("dns", "lab-node-2", "DNS") == "passed"
    assert not m.all_passed


def test_healthy_run_is_all_green() -> None:
    records = [r for r in stale_arp_run() if r.outcome == "passed"]
    m = mx.build(NODES, records)
    assert m.all_passed
    svg = ET.fromstring(mx.render_svg(m))
    outcomes = {g.get("data-outcome") for g in svg.iter(f"{SVG}g") if g.get("class") == "cell"}
    assert outcomes == {"passed"}


def test_worst_outcome_wins_and_label_falls_back_to_the_error_kind() -> None:
    cell = mx.Cell()
    for outcome, err in (("passed", ""), ("skipped", ""), ("failed", "refused"), ("passed", "")):
        cell.add(mx.Record("nodeport", "a", "b", outcome, "", err))
    assert (cell.outcome, cell.label) == ("failed", "refused")


def test_probe_not_run_is_amber_not_a_network_verdict() -> None:
    records = mx.records_from_report(
        "t", "broken", [{**path("service", "lab-node-1", None), "error": "probe_not_run"}], []
    )
    m = mx.build(NODES, records)
    assert m.outcome("service", "lab-node-1", "ClusterIP") == "broken"
    assert m.cells["service"][("lab-node-1", "ClusterIP")].label == "probe not run"


def test_paths_without_a_source_node_are_ignored_and_outside_sorts_last() -> None:
    records = mx.records_from_report("t", "passed", [path("nodeport", "outside the cluster", "lab-node-1")], [])
    records += mx.records_from_report("t", "passed", [path("nodeport", "lab-node-3", "lab-node-1")], [])
    records += mx.records_from_report("t", "failed", [{"check": "nodeport", "src_node": None}], [])
    m = mx.build(NODES, records)
    assert m.sources("nodeport") == ["lab-node-3", "outside the cluster"]


def test_svg_cells_carry_the_cause_text_and_a_tooltip() -> None:
    svg_text = mx.render_svg(mx.build(NODES, stale_arp_run()))
    root = ET.fromstring(svg_text)
    red = [g for g in root.iter(f"{SVG}g") if g.get("data-outcome") == "failed"]
    assert len(red) == 4  # 1<->2 and 2<->3, both directions
    for g in red:
        assert g.find(f"{SVG}text").text == "stale-flannel-arp"
        assert "lab-node-2" in (g.get("data-src"), g.get("data-dst"))
        assert "failed: suites/test_pod_to_pod.py" in g.find(f"{SVG}title").text
    assert "some paths FAILED" in svg_text


def test_records_survive_json_round_trip_of_user_properties() -> None:
    # xdist serializes user_properties; JSON-string causes must still map
    recs = mx.records_from_report(
        "t",
        "failed",
        [path("pod_to_pod", "lab-node-1", "lab-node-2", "timeout")],
        json.loads(json.dumps(["stale-flannel-arp@lab-node-2"])),
    )
    assert recs[0].cause == "stale-flannel-arp"
