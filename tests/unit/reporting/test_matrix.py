"""The node x node picture: cells from test reports, colours, cause names, SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from netconform.reporting import matrix as mx
from netconform.reporting.names import short_names

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


# ---------------------------------------------------------------- at any size: 100 GKE-style nodes


def gke_names(n: int = 100) -> list[str]:
    """GKE's shape: gke-<cluster>-<pool>-<instance group hash>-<4 random characters>; two pools."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    pools = [("pool-1", "abcd1234"), ("pool-2", "ef567890")]
    return [
        f"gke-prod-{pools[i % 2][0]}-{pools[i % 2][1]}-{alphabet[i % 36]}{alphabet[(i * 7) % 36]}{alphabet[i // 36]}x"
        for i in range(n)
    ]


def run_of(nodes: list[str], bad: str) -> list[mx.Record]:
    """pod_to_pod over a ring (each node to its next 4, as --pairs auto does past 20 nodes); `bad` breaks."""
    records = []
    for i, src in enumerate(nodes):
        for dst in (nodes[(i + k) % len(nodes)] for k in range(1, 5)):
            broken = bad in (src, dst)
            records += mx.records_from_report(
                f"suites/test_pod_to_pod.py::test_tcp[{src}-to-{dst}]",
                "failed" if broken else "passed",
                [path("pod_to_pod", src, dst, "timeout" if broken else None)],
                [f"stale-flannel-arp@{bad}"] if broken else [],
            )
        records += mx.records_from_report(f"suites/test_dns.py::test[{src}]", "passed", [path("dns", src, None)], [])
    return records


def test_names_are_shown_by_the_part_that_tells_them_apart() -> None:
    nodes = gke_names()
    assert len(set(nodes)) == 100
    for room in (12, 18, 34):
        labels = short_names(nodes, room)
        assert len(set(labels.values())) == 100, room  # every node still distinct
        assert all(len(label) <= room for label in labels.values()), room
        assert all(n.endswith(label.lstrip("…").split("…")[-1]) for n, label in labels.items())
    # the shared "gke-prod-pool-" goes; one pool's shared prefix too; a suffix like ".ec2.internal" as well
    assert short_names(nodes, 34)[nodes[0]] == nodes[0].removeprefix("gke-prod-pool-")
    one_pool = nodes[::2]
    assert short_names(one_pool, 34)[one_pool[0]] == one_pool[0].rsplit("-", 1)[1]
    eks = ["ip-10-0-1-23.ec2.internal", "ip-10-0-2-7.ec2.internal"]
    assert short_names(eks, 34) == {eks[0]: "1-23", eks[1]: "2-7"}
    assert short_names(["lab-node-1"], 34) == {"lab-node-1": "lab-node-1"}  # one name: nothing shared


def test_a_100_node_picture_is_a_summary_with_the_failing_node_first() -> None:
    nodes = gke_names()
    bad = nodes[57]
    m = mx.build(nodes, run_of(nodes, bad))
    assert m.ranked()[0] == bad  # in every panel, the node in the most failed cells first
    root = ET.fromstring(mx.render_svg(m))
    width, height = int(root.get("width")), int(root.get("height"))
    assert width <= 2000 and height <= 2000, (width, height)  # was 25,208 x 14,146 px
    panel = next(g for g in root.iter(f"{SVG}g") if g.get("data-check") == "pod_to_pod")
    lines = [g for g in panel.iter(f"{SVG}g") if g.get("class") == "node"]
    assert len(lines) == mx.SUMMARY_ROWS
    first = lines[0]
    assert (first.get("data-node"), first.get("data-outcome")) == (bad, "failed")
    texts = [t.text for t in first.iter(f"{SVG}text")]
    # from it: its 4 ring peers; to it: the 4 nodes before it; all failed, with the cause
    assert texts[1:] == ["4 failed of 4", "4 failed of 4", "stale-flannel-arp"], texts
    assert bad.endswith(texts[0].lstrip("…"))
    # the nodes that dial it or that it dials follow (one failed cell each), then the healthy ones
    assert {g.get("data-outcome") for g in lines[1:9]} == {"failed"}
    assert {g.get("data-outcome") for g in lines[9:]} == {"passed"}
    more = [t.text for t in panel.iter(f"{SVG}text") if (t.text or "").startswith("… ")]
    assert more == ["… 75 more nodes, none failing"]
    dns = next(g for g in root.iter(f"{SVG}g") if g.get("data-check") == "dns")  # nothing failed there: one line
    assert [t.text for t in dns.iter(f"{SVG}text")][-1] == "100 nodes: every path passed"
    assert not [g for g in dns.iter(f"{SVG}g") if g.get("class") == "node"]
    notes = [t.text for t in root.findall(f"{SVG}text")]
    assert "node names without the 'gke-prod-pool-' all of them share" in notes, notes


def test_up_to_the_threshold_the_grid_puts_failing_nodes_first_and_short_names() -> None:
    nodes = gke_names(mx.FULL_UP_TO)
    bad = nodes[5]
    m = mx.build(nodes, run_of(nodes, bad))
    root = ET.fromstring(mx.render_svg(m))
    panel = next(g for g in root.iter(f"{SVG}g") if g.get("data-check") == "pod_to_pod")
    cells = [g for g in panel.iter(f"{SVG}g") if g.get("class") == "cell"]
    assert cells[0].get("data-src") == bad and m.sources("pod_to_pod")[0] == bad
    assert m.destinations("pod_to_pod")[0] == bad
    headers = [t for t in panel.findall(f"{SVG}text") if t.find(f"{SVG}title") is not None]
    shown = [(t.find(f"{SVG}title").text, t.find(f"{SVG}title").tail) for t in headers]
    assert all(full.endswith(text.split("…")[-1]) and len(text) < len(full) for full, text in shown if text)
    assert len({text for _, text in shown}) == len({full for full, _ in shown})
