"""The upgrade gate's logic: hold logs, verdicts, comparison with the baseline, the summary, manifests."""

from __future__ import annotations

from pathlib import Path

from netconform import gate
from netconform.workload import labels as workload_labels

DATA = Path(__file__).parent / "data"
SURVIVED = (DATA / "hold-survived.jsonl").read_text()
BROKEN = (DATA / "hold-broken.jsonl").read_text()
RUNNING = SURVIVED.splitlines()[0] + "\n"
NODES = ["lab-node-1", "lab-node-2", "lab-node-3"]


def running(text: str) -> gate.HoldState:
    state = gate.parse_hold_log(text)
    state.phase = "Running"
    return state


def test_a_running_hold_with_one_connect_survived() -> None:
    st = running(RUNNING)
    assert st.established and st.survived and st.why_not() == ""


def test_a_break_is_read_with_its_time_and_reason() -> None:
    st = running(BROKEN)
    assert not st.survived
    assert st.breaks[0][1] == "no echo of line 4 within 1s: EOF"
    assert st.why_not().startswith("broke at 2026-") and "no echo of line 4" in st.why_not()


def test_a_hold_that_ended_or_whose_pod_is_gone_did_not_survive() -> None:
    ended = running(SURVIVED)  # ok_summary: the hold process stopped (SIGTERM: pod deleted, node drained)
    assert not ended.survived and "ended" in ended.why_not()
    failed_pod = gate.parse_hold_log(RUNNING)
    failed_pod.phase = "Failed"
    assert not failed_pod.survived
    assert not running("runtime noise\n{not json\n").established


def outcome(o: str, causes: list[str] | None = None, src: str = "lab-node-1", dst: str = "lab-node-2") -> dict:
    return {
        "outcome": o,
        "causes": causes or [],
        "message": f"{src} -> {dst}: timeout" if o == "failed" else "",
        "paths": [{"check": "pod_to_pod", "src_node": src, "dst_node": dst}],
    }


def test_compare_new_fixed_still_failing_and_new_tests() -> None:
    base = {"a": outcome("passed"), "b": outcome("failed"), "c": outcome("failed"), "gone": outcome("passed")}
    now = {
        "a": outcome("failed"),
        "b": outcome("passed"),
        "c": outcome("failed"),
        "new": outcome("failed"),
        "skip": outcome("skipped"),
    }
    c = gate.compare(base, now)
    assert (c.new_failures, c.fixed, c.still_failing, c.not_run_now) == (["a", "new"], ["b"], ["c"], ["gone"])
    assert c.blocks and c.passed == 1


def holds() -> list[gate.Hold]:
    return [gate.Hold(h.src, h.dst, h.via, h.pod, "10.244.1.5:8082") for h in gate.planned_holds(NODES)]


def test_one_hold_per_ordered_pair_and_path() -> None:
    hs = gate.planned_holds(NODES)
    assert len(hs) == 3 * 2 * 2
    assert len({h.pod for h in hs}) == len(hs)
    assert "hold-pod-lab-node-1--lab-node-2" in {h.pod for h in hs}


def test_upgrade_that_broke_nothing_passes() -> None:
    hs = holds()
    base = {"t1": outcome("passed"), "t2": outcome("failed", ["coredns-down"])}
    now = {"t1": outcome("passed"), "t2": outcome("passed")}
    v = gate.judge(base, now, hs, {h.pod: running(RUNNING) for h in hs}, {h.pod for h in hs})
    assert v.exit_code == gate.EXIT_PASS
    text = gate.summary(v, base, now)
    assert text.startswith("GATE PASSED: no new failures (2 tests pass), all 12 long-lived connections survived")
    assert "Fixed since the baseline (1):\n  + t2" in text


def test_fault_after_the_baseline_blocks_and_names_the_cause() -> None:
    hs = holds()
    states = {h.pod: running(BROKEN if "lab-node-2" in (h.src, h.dst) else RUNNING) for h in hs}
    base = {"t12": outcome("passed"), "t13": outcome("passed", src="lab-node-1", dst="lab-node-3")}
    now = {
        "t12": outcome("failed", ["stale-flannel-arp@lab-node-2"]),
        "t13": outcome("passed", src="lab-node-1", dst="lab-node-3"),
    }
    v = gate.judge(base, now, hs, states, {h.pod for h in hs})
    assert v.exit_code == gate.EXIT_BLOCK
    assert len(v.broken) == 8 and len(v.survived) == 4
    assert {cause for _, _, cause in v.broken} == {"stale-flannel-arp@lab-node-2"}
    text = gate.summary(v, base, now)
    assert text.startswith("GATE BLOCKED: 1 new failure, 8 of 12 long-lived connections broken")
    assert "stale-flannel-arp on lab-node-2 explains 1" in text
    assert "likely stale-flannel-arp on lab-node-2" in text


def test_paths_down_at_the_baseline_are_not_watched_and_do_not_block() -> None:
    hs = holds()
    down = {h.pod for h in hs if "lab-node-3" in (h.src, h.dst)}
    states = {h.pod: running("" if h.pod in down else RUNNING) for h in hs}
    v = gate.judge({}, {}, hs, states, {h.pod for h in hs} - down)
    assert v.exit_code == gate.EXIT_PASS and len(v.not_established) == 8
    assert "Not watched (no connection at the baseline, 8)" in gate.summary(v, {}, {})


def test_gate_namespace_is_invisible_to_the_suites_sweep() -> None:
    labels = gate.namespace_manifest("ci@host")["metadata"]["labels"]
    # the suite's sweep selects managed-by=netconform: it never sees the gate
    assert labels.get(workload_labels.MANAGED_BY_LABEL) != workload_labels.MANAGED_BY
    assert labels[gate.GATE_LABEL] == "open"


def test_hold_pod_is_pinned_never_restarted_and_dials_its_target() -> None:
    h = gate.Hold("lab-node-1", "lab-node-2", "service", "hold-service-lab-node-1--lab-node-2", "10.96.5.5:8082")
    spec = gate.hold_manifest(h, "ghcr.io/netconform/probe:0.1.0")["spec"]
    assert spec["nodeName"] == "lab-node-1" and spec["restartPolicy"] == "Never"
    assert spec["containers"][0]["args"] == [
        "hold",
        "--target",
        "10.96.5.5:8082",
        "--interval",
        "1s",
        "--duration",
        "0",
    ]
    svc = gate.service_manifest("lab-node-2")["spec"]
    assert svc["selector"] == {gate.ROLE_LABEL: "server", gate.NODE_LABEL: "lab-node-2"}
