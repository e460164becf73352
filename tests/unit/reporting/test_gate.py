"""The upgrade gate's logic: holder logs, churn, verdicts, comparison with the baseline, the summary,
manifests (controller-owned, O(nodes)), the node selection and the permission preflight.

data/holder-plan.jsonl is real `probe hold --plan` output on loopback (probe built from probe/): four
targets, two to a server that stayed, two to one that was killed after 2.5 s; the holder was still running.
data/holder-late.jsonl is real `probe hold --plan --interval 1s --break-after 4s` output on loopback against
an echo server that answered lines 2-3 of each connection 1.4 s late and then went silent for 30 s."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from netconform import gate
from netconform.dialing.pairs import choose_pairs
from netconform.gate import namespace as gate_namespace
from netconform.gate.__main__ import _parser as gate_parser
from netconform.gate.__main__ import selection_of, split_selection
from netconform.kube.access import Permission
from netconform.plugin.permissions import GATE_PERMISSIONS
from netconform.workload import labels as workload_labels

DATA = Path(__file__).parent / "data"
SURVIVED = (DATA / "hold-survived.jsonl").read_text()  # the single --target form (no id)
PLAN_LOG = (DATA / "holder-plan.jsonl").read_text()
LATE_LOG = (DATA / "holder-late.jsonl").read_text()
NODES = ["lab-node-1", "lab-node-2", "lab-node-3"]


def test_a_holder_log_is_read_per_target() -> None:
    states = gate.parse_holder_log(PLAN_LOG)
    assert set(states) == {"pod:lab-node-2", "service:lab-node-2", "pod:lab-node-3", "service:lab-node-3"}
    assert states["pod:lab-node-2"].up and states["pod:lab-node-2"].survived
    broken = states["pod:lab-node-3"]
    assert not broken.survived and not broken.up
    assert broken.breaks[0][1] == "no echo of line 4 within 1s: EOF"
    assert broken.why_not().startswith("broke at 2026-") and "no echo of line 4" in broken.why_not()


def test_a_late_echo_is_latency_and_only_silence_past_the_bound_is_a_break() -> None:
    st = gate.parse_holder_log(LATE_LOG)["pod:lab-node-2"]
    assert [detail.split(" after ")[0] for _, detail in st.late] == ["echo of line 3", "echo of line 9"]
    assert len(st.breaks) == 1 and st.breaks[0][1].startswith("no echo of line 6 within 4s: ")
    assert st.summary == {"sent": 10, "echoed": 8, "breaks": 1, "connects": 2, "late": 4, "max_ms": 1414}


def test_a_hold_that_answered_late_survives_and_the_summary_says_latency() -> None:
    hs = holds()
    late = gate.parse_holder_log(
        '{"event":"connected","id":"x","at":"t","detail":""}\n'
        '{"event":"late","id":"x","at":"t1","detail":"echo of line 41 after 2.3s (latency, not a break)"}'
    )["x"]
    states = {h.key: (late if i == 0 else UP) for i, h in enumerate(hs)}
    base = now = {"t1": outcome("passed")}
    v = gate.judge(base, now, hs, states, {h.key for h in hs})
    assert v.exit_code == gate.EXIT_PASS and len(v.survived) == 12 and [h for h, _ in v.late] == [hs[0]]
    text = gate.summary(v, base, now)
    assert "Slow echoes, not breaks (1 long-lived connections answered later than 1s at least once" in text
    assert f"~ {hs[0].label}: at t1, echo of line 41 after 2.3s" in text


def test_the_holder_waits_out_tcp_retransmissions_before_calling_a_break() -> None:
    args = gate.holder_daemonset(NODES, "probe:x")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--break-after") + 1] == f"{gate.BREAK_AFTER_S}s" and gate.BREAK_AFTER_S >= 15


def test_a_hold_that_ended_did_not_survive_and_noise_is_ignored() -> None:
    ended = gate.parse_holder_log(SURVIVED)[""]  # ok_summary: the hold process stopped
    assert ended.established and not ended.survived and "ended" in ended.why_not()
    assert gate.parse_holder_log("runtime noise\n{not json\n[1]\n") == {}


def test_breaks_before_the_baseline_do_not_count() -> None:
    # a ClusterIP hold may miss its first connect while the Service gets its endpoint
    log = (
        '{"event":"broken","id":"service:b","at":"t0","detail":"connect: connection refused"}\n'
        '{"event":"connected","id":"service:b","at":"t1","detail":"x -> y"}\n'
    )
    st = gate.parse_holder_log(log)["service:b"]
    assert st.up and not st.survived and st.since(1).survived


def test_held_pairs_are_the_suites_pairs_twice_and_pods_stay_two_per_node() -> None:
    three = choose_pairs(NODES, "auto", 4, 7)
    hs = gate.planned_holds(three.pairs)
    assert len(hs) == 3 * 2 * 2 and len({h.key for h in hs}) == len(hs)
    assert {h.via for h in hs} == {"pod", "service"}
    big = [f"ip-10-0-{i // 250}-{i % 250}.eu-west-1.compute.internal" for i in range(1000)]
    sample = choose_pairs(big, "auto", 4, 7)
    held = gate.planned_holds(sample.pairs)
    assert sample.mode == "sample" and len(held) == len(sample.pairs) * 2
    for n in (big[0], big[-1]):  # every node holds and is held k times per path
        assert sum(h.src == n for h in held) >= 8 and sum(h.dst == n for h in held) >= 8
    # the pods: two DaemonSets whatever the size; the plan fits a ConfigMap (1 MiB)
    placed = [gate.Hold(h.src, h.dst, h.via, "10.244.123.234:8082") for h in held]
    data = gate.plan_configmap(big, placed)["data"]
    assert sum(len(k) + len(v) for k, v in data.items()) < 800_000
    with pytest.raises(ValueError, match=r"more than a ConfigMap holds .*: hold fewer pairs \(--pairs-per-node\)"):
        gate.plan_configmap(big, placed * 2)
    manifests = [gate.server_daemonset(big, "img"), gate.holder_daemonset(big, "img")]
    assert {m["kind"] for m in manifests} == {"DaemonSet"}


def test_the_plan_has_every_node_in_probe_hold_format() -> None:
    holds = [
        gate.Hold("lab-node-1", "lab-node-2", "pod", "10.244.2.5:8082"),
        gate.Hold("lab-node-1", "lab-node-2", "service", "10.96.0.20:8082"),
    ]
    data = gate.plan_configmap(NODES, holds)["data"]
    assert set(data) == set(NODES)
    assert json.loads(data["lab-node-1"]) == {
        "targets": [
            {"id": "pod:lab-node-2", "target": "10.244.2.5:8082"},
            {"id": "service:lab-node-2", "target": "10.96.0.20:8082"},
        ]
    }
    assert json.loads(data["lab-node-3"]) == {"targets": []}  # its holder starts and holds nothing


def test_gate_pods_are_daemonset_pods_on_the_selected_nodes_only() -> None:
    for ds in (gate.server_daemonset(NODES[:2], "probe:1"), gate.holder_daemonset(NODES[:2], "probe:1")):
        spec = ds["spec"]["template"]["spec"]
        assert ds["kind"] == "DaemonSet"  # `kubectl drain --ignore-daemonsets` leaves them
        assert "nodeName" not in spec and "restartPolicy" not in spec  # the controller places and restarts
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert [t["matchFields"][0]["values"] for t in terms] == [["lab-node-1"], ["lab-node-2"]]
        assert spec["tolerations"] == [{"operator": "Exists"}]
        assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
    holder = gate.holder_daemonset(NODES, "probe:1")["spec"]["template"]["spec"]
    assert holder["containers"][0]["args"] == [
        "hold",
        "--plan",
        "/plan/$(NODE_NAME)",
        "--interval",
        "1s",
        "--break-after",
        "20s",
        "--duration",
        "0",
    ]
    assert holder["volumes"] == [{"name": "plan", "configMap": {"name": gate.PLAN_CONFIGMAP}}]
    svc = gate.service_manifest("lab-node-2")["spec"]
    assert svc["selector"] == {gate.ROLE_LABEL: "server", gate.NODE_LABEL: "lab-node-2"}


def test_gate_namespace_is_invisible_to_the_suites_sweep() -> None:
    labels = gate.namespace_manifest("ci@host")["metadata"]["labels"]
    # the suite's sweep selects managed-by=netconform: it never sees the gate
    assert labels.get(workload_labels.MANAGED_BY_LABEL) != workload_labels.MANAGED_BY
    assert labels[gate.GATE_LABEL] == "open"


# ---------------------------------------------------------------- pods and churn


def api_pod(role: str, node: str, uid: str, restarts: int = 0, deleting: bool = False, minute: int = 0) -> Any:
    term = SimpleNamespace(exit_code=137, reason="Error", finished_at=datetime(2026, 11, 28, tzinfo=UTC))
    return SimpleNamespace(
        metadata=SimpleNamespace(
            name=f"gate-{role}-{uid}",
            uid=uid,
            labels={gate.ROLE_LABEL: role},
            deletion_timestamp="x" if deleting else None,
            creation_timestamp=datetime(2026, 11, 28, 9, minute, tzinfo=UTC),
        ),
        spec=SimpleNamespace(node_name=node),
        status=SimpleNamespace(
            phase="Running",
            pod_ip="10.244.1.5",
            container_statuses=[
                SimpleNamespace(
                    restart_count=restarts, last_state=SimpleNamespace(terminated=term if restarts else None)
                )
            ],
        ),
    )


def test_gate_pods_by_role_and_node_prefer_the_live_pod() -> None:
    pods = gate.gate_pods(
        [
            api_pod("server", "n1", "old", deleting=True),
            api_pod("server", "n1", "new", minute=5),
            api_pod("holder", "n1", "h"),
        ]
    )
    assert pods[("server", "n1")].uid == "new" and pods[("holder", "n1")].uid == "h"
    assert gate.gate_pods([api_pod("server", "n2", "going", deleting=True)])[("server", "n2")].uid == "going"


def test_an_end_that_was_replaced_restarted_or_is_gone_is_churn() -> None:
    before = gate.gate_pods([api_pod("server", "n1", "a")])[("server", "n1")]
    same = before
    replaced = gate.gate_pods([api_pod("server", "n1", "b")])[("server", "n1")]
    restarted = gate.gate_pods([api_pod("server", "n1", "a", restarts=1)])[("server", "n1")]
    assert gate.end_churn("server", "n1", before, same, True) == ""
    assert "was replaced (gate-server-a -> gate-server-b" in gate.end_churn("server", "n1", before, replaced, True)
    assert "restarted 1x (last: exit 137 (Error)" in gate.end_churn("server", "n1", before, restarted, True)
    assert gate.end_churn("server", "n1", before, None, False) == "the server on n1 is gone (the node left the cluster)"


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
    return [
        gate.Hold(h.src, h.dst, h.via, "10.244.1.5:8082")
        for h in gate.planned_holds(choose_pairs(NODES, "all", 4, 0).pairs)
    ]


UP = gate.parse_holder_log('{"event":"connected","id":"x","at":"t","detail":""}')["x"]
DOWN = gate.parse_holder_log(
    '{"event":"connected","id":"x","at":"t","detail":""}\n{"event":"broken","id":"x","at":"t2","detail":"no echo"}'
)["x"]


def test_upgrade_that_broke_nothing_passes() -> None:
    hs = holds()
    base = {"t1": outcome("passed"), "t2": outcome("failed", ["coredns-down"])}
    now = {"t1": outcome("passed"), "t2": outcome("passed")}
    v = gate.judge(base, now, hs, {h.key: UP for h in hs}, {h.key for h in hs})
    assert v.exit_code == gate.EXIT_PASS
    text = gate.summary(v, base, now)
    assert text.startswith("GATE PASSED: no new failures (2 tests pass), all 12 long-lived connections survived")
    assert "Fixed since the baseline (1):\n  + t2" in text


def test_a_drain_that_moved_pods_is_churn_not_a_break() -> None:
    hs = holds()
    # lab-node-2 drained and rebooted: its holder was replaced (its new log has only a fresh connect),
    # its server restarted (the holds to it broke)
    states = {h.key: (DOWN if h.dst == "lab-node-2" else UP) for h in hs}
    churned = {
        ("holder", "lab-node-2"): "the holder on lab-node-2 was replaced (a -> b, created t)",
        ("server", "lab-node-2"): "the server on lab-node-2 restarted 1x",
    }
    drained = {"lab-node-2": "cordoned at 2026-11-28T09:30:00+00:00 (NodeNotSchedulable)"}
    v = gate.judge({}, {}, hs, states, {h.key for h in hs}, churned, {}, drained)
    assert v.exit_code == gate.EXIT_PASS and not v.broken
    assert len(v.churn) == 8 and len(v.survived) == 4
    text = gate.summary(v, {}, {})
    assert text.startswith("GATE PASSED: no new failures (0 tests pass), 4 of 12 long-lived connections survived, ")
    assert "8 ended with their pods (expected churn)" in text
    assert "lab-node-2: cordoned at 2026-11-28T09:30:00+00:00 (NodeNotSchedulable); gate pods moved: " in text
    assert "~ lab-node-1 -> lab-node-2 (pod IP 10.244.1.5:8082): the server on lab-node-2 restarted 1x" in text


def test_a_drained_node_whose_pods_lived_on_still_blocks_a_break() -> None:
    hs = holds()
    states = {h.key: (DOWN if "lab-node-2" in (h.src, h.dst) else UP) for h in hs}
    drained = {"lab-node-2": "cordoned at t (NodeNotSchedulable)"}
    v = gate.judge({}, {}, hs, states, {h.key for h in hs}, {}, {}, drained)
    assert v.exit_code == gate.EXIT_BLOCK and len(v.broken) == 8
    text = gate.summary(v, {}, {})
    assert "Broken long-lived connections (both pods lived on):" in text
    assert "lab-node-2: cordoned at t (NodeNotSchedulable); the gate's DaemonSet pods there lived on (0 moved)" in text


def test_fault_after_the_baseline_blocks_and_names_the_cause() -> None:
    hs = holds()
    states = {h.key: (DOWN if "lab-node-2" in (h.src, h.dst) else UP) for h in hs}
    base = {"t12": outcome("passed"), "t13": outcome("passed", src="lab-node-1", dst="lab-node-3")}
    now = {
        "t12": outcome("failed", ["stale-flannel-arp@lab-node-2"]),
        "t13": outcome("passed", src="lab-node-1", dst="lab-node-3"),
    }
    v = gate.judge(base, now, hs, states, {h.key for h in hs})
    assert v.exit_code == gate.EXIT_BLOCK
    assert len(v.broken) == 8 and len(v.survived) == 4
    assert {cause for _, _, cause in v.broken} == {"stale-flannel-arp@lab-node-2"}
    text = gate.summary(v, base, now)
    assert text.startswith("GATE BLOCKED: 1 new failure, 8 of 12 long-lived connections broken")
    assert "stale-flannel-arp on lab-node-2 explains 1" in text
    assert "likely stale-flannel-arp on lab-node-2" in text


def test_paths_down_at_the_baseline_are_not_watched_and_do_not_block() -> None:
    hs = holds()
    down = {h.key for h in hs if "lab-node-3" in (h.src, h.dst)}
    states = {h.key: (gate.HoldState() if h.key in down else UP) for h in hs}
    v = gate.judge({}, {}, hs, states, {h.key for h in hs} - down)
    assert v.exit_code == gate.EXIT_PASS and len(v.not_established) == 8
    assert "Not watched (no connection at the baseline, 8)" in gate.summary(v, {}, {})


# ---------------------------------------------------------------- selection and permissions


def test_selection_is_read_from_the_gate_and_the_pytest_args() -> None:
    picked, rest = split_selection(
        ["-k", "lab", "--nodes", "pool=blue", "--node-limit=5", "--pairs-per-node", "2", "-q"]
    )
    assert rest == ["-k", "lab", "-q"]
    args = gate_parser().parse_args(["baseline", "--pairs-seed", "42"])
    sel = selection_of(args, picked)
    assert sel == gate.Selection(node_selector="pool=blue", node_limit=5, pairs_per_node=2, pairs_seed=42)
    assert sel.suite_args() == [
        "--pairs=auto",
        "--pairs-per-node=2",
        "--node-selector=pool=blue",
        "--node-limit=5",
        "--pairs-seed=42",
    ]
    assert selection_of(gate_parser().parse_args(["check"]), []) is None


def test_the_gate_checks_exactly_the_gate_role() -> None:
    assert set(gate.PERMISSIONS) == set(GATE_PERMISSIONS)  # rbac.yaml == GATE_PERMISSIONS: test_cluster_rbac
    assert Permission("create", "pods") not in gate.PERMISSIONS  # no bare pods any more


def test_a_missing_permission_is_one_sentence_and_could_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = [Permission("create", "daemonsets", "apps"), Permission("get", "pods", subresource="log")]
    monkeypatch.setattr(gate_namespace, "missing_permissions", lambda api, wanted: missing)
    ns = object.__new__(gate.GateNamespace)
    ns.api = None  # type: ignore[assignment]
    with pytest.raises(gate.GateError) as err:
        ns.preflight()
    assert err.value.code == gate.EXIT_CANNOT_RUN == 3
    msg = str(err.value)
    assert msg == (
        "the gate cannot run: missing permissions create daemonsets.apps, get pods/log "
        "(grant ClusterRole netconform-gate from suites/rbac.yaml)"
    )
    assert "\n" not in msg


def test_a_gate_opened_by_the_old_pod_per_connection_gate_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "gate.json").write_text(
        json.dumps({"holds": [{"src": "a", "dst": "b", "via": "pod", "pod": "hold-x"}]})
    )
    with pytest.raises(gate.GateError) as err:
        gate.check(tmp_path, None, None, [])
    assert err.value.code == gate.EXIT_USAGE and "`ci/gate close`, then `ci/gate baseline` again" in str(err.value)


class FakeGate(gate.GateNamespace):
    """The API calls of open_gate, answered from memory: DaemonSets get one Running pod per node, every
    holder connects to every target of its plan."""

    def __init__(self) -> None:  # no cluster
        self.created: list[dict[str, Any]] = []
        self.labelled: list[tuple[str, str]] = []
        self.plan: dict[str, str] = {}

    def create(self, manifest: dict[str, Any]) -> Any:
        self.created.append(manifest)
        if manifest["kind"] == "ConfigMap":
            self.plan = manifest["data"]
        return SimpleNamespace(spec=SimpleNamespace(cluster_ip=f"10.96.0.{len(self.created)}"))

    def pods(self) -> dict[tuple[str, str], gate.GatePod]:
        out = {}
        for ds in (m for m in self.created if m["kind"] == "DaemonSet"):
            role = ds["spec"]["template"]["metadata"]["labels"][gate.ROLE_LABEL]
            terms = ds["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]["nodeSelectorTerms"]
            for i, t in enumerate(terms):
                node = t["matchFields"][0]["values"][0]
                out[(role, node)] = gate.GatePod(
                    role, node, f"gate-{role}-{node}", f"uid-{role}-{node}", 0, "Running", f"10.244.{i}.9"
                )
        return out

    def label_server(self, pod: str, node: str) -> None:
        self.labelled.append((pod, node))

    def log(self, pod: str) -> str:
        node = pod.removeprefix("gate-holder-")
        return "".join(
            json.dumps({"event": "connected", "id": t["id"], "at": "t", "detail": "x"}) + "\n"
            for t in json.loads(self.plan[node])["targets"]
        )


def test_opening_the_gate_creates_two_daemonsets_and_no_pod() -> None:
    fake = FakeGate()
    opened = gate.open_gate(fake, NODES, gate.planned_holds(choose_pairs(NODES, "all", 4, 0).pairs), "probe:1")
    kinds = [m["kind"] for m in fake.created]
    assert kinds == ["Namespace", "DaemonSet", "Service", "Service", "Service", "ConfigMap", "DaemonSet"]
    assert sorted(n for _, n in fake.labelled) == NODES  # each server labelled: its node's Service selects it
    assert len(opened.pods) == 2 * len(NODES) and opened.established == {h.key for h in opened.holds}
    targets = {h.key: h.target for h in opened.holds}
    assert targets["lab-node-1/pod:lab-node-2"] == "10.244.1.9:8082"
    assert targets["lab-node-1/service:lab-node-2"].startswith("10.96.0.") and opened.breaks == dict.fromkeys(
        targets, 0
    )
