"""The per-source pattern from the dial results (diagnose.dialseq) and the rules that use it, on REAL lab runs.

tests/data/recorded/lab/per_source_limit_first and per_source_limit_again (README there): `ci/lab fault
per-source-limit --node lab-node-2`, then `pytest suites/ -p no:randomly -q --dial-timeout 0.5
--stability-count 20 --diagnose-record DIR` twice under the same fault (the second run's sources had used
their one connection in the first). Besides what --diagnose-record wrote, `dials.json` and `host_dials.json`
are the run's dial results (every client pod's and this machine's, as the probe returned them). The paths a
test records are made here from them by the suite's own writer (DialResult.path_info with the source's
other results), for the failed tests listed in paths.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netconform.diagnose import correlate
from netconform.diagnose.dialseq import FIRST_OK, OK_ELSEWHERE, source_patterns
from netconform.diagnose.evidence import ClusterEvidence, NodeEvidence, Section
from netconform.diagnose.facts_record import facts_from_dict
from netconform.diagnose.rules import run_rules
from netconform.dialing.host import HostDials
from netconform.dialing.model import SourceOutcome
from netconform.dialing.path import PathInfo, read_paths, record_path
from tests.unit.diagnose.conftest import load_case

LAB = Path(__file__).resolve().parents[2] / "data" / "recorded" / "lab"
FIRST, AGAIN = "per_source_limit_first", "per_source_limit_again"
# the same fault, recorded by the suite with per-attempt paths (its paths.json as the run wrote it)
RECORDED = "per_source_limit"


def replay(case: str) -> tuple[ClusterEvidence, dict[str, list[PathInfo]]]:
    """The case's evidence and, per failed test, the paths the suite records now (with attempts)."""
    d = LAB / case
    facts = facts_from_dict(json.loads((d / "facts.json").read_text()))
    ev = ClusterEvidence(
        facts, {f.stem: NodeEvidence.from_output(f.stem, f.read_text()) for f in sorted(d.glob("lab-node-*.txt"))}
    )
    book = {n: SourceOutcome.from_dict(o) for n, o in json.loads((d / "dials.json").read_text())["outcomes"].items()}
    host = HostDials.from_dict(json.loads((d / "host_dials.json").read_text()))
    per_test: dict[str, list[PathInfo]] = {}
    for nodeid, recorded in json.loads((d / "paths.json").read_text()).items():
        props: list[tuple[str, object]] = []
        for p in recorded:
            vm = p["src_pod"] == "vm"
            results = host.results[p["dst_node"]] if vm else book[p["src_node"]].results
            (r,) = [r for r in results if r.endpoint == p["target"] and (vm or r.check == p["check"])]
            record_path(props, r.path_info(p["check"], results))
        # what the diagnosis reads back: the same error as the run recorded, now with the attempts
        assert [(i.check, i.target, i.error) for i in read_paths(props)] == [
            (p["check"], p["target"], p["error"]) for p in recorded
        ]
        per_test[nodeid] = correlate.failed_paths(read_paths(props))
    return ev, per_test


def patterns(case: str) -> dict[tuple[str, str], object]:
    ev, per_test = replay(case)
    return {(p.src_node, p.host): p for p in source_patterns([x for ps in per_test.values() for x in ps], ev.facts)}


def test_recorded_paths_carry_each_attempt_and_the_sources_other_dials_there() -> None:
    _, per_test = replay(FIRST)
    (p,) = per_test["suites/test_stability.py::test_nodeport_connections_all_succeed[ipv4-from-lab-node-1]"]
    # lab-node-1's pod: 20 connections to lab-node-2's NodePort, the first answered, stopped after 5 timeouts
    assert (p.target, p.attempts) == ("10.99.0.12:30387", "ok T*5")
    assert p.same_host == "30387: T; 31366: T"  # its single NodePort dials there (eTP Cluster and Local)
    (q,) = per_test["suites/test_nodeport.py::test_nodeport_local_from_pod[ipv4-lab-node-3-to-lab-node-2]"]
    assert (q.attempts, q.same_host) == ("T", "30387: ok")


def test_first_connection_passed_later_ones_timed_out_is_recognised() -> None:
    got = patterns(FIRST)
    p = got[("lab-node-1", "10.99.0.12")]
    assert (p.kind, p.dst_node, p.port, p.passed, p.timed_out) == (FIRST_OK, "lab-node-2", 30387, 1, 6)
    assert p.quote() == (
        "from lab-node-1's pod to lab-node-2:30387 (10.99.0.12) the first connection passed, the next 6 timed out "
        "(SYN without answer; its dials there, each in order: T | ok T*5)"
    )
    # lab-node-2's own pod (its state is on lab-node-2): its single dial to lab-node-3 won, its stability run lost
    assert got[("lab-node-2", "10.99.0.13")].kind == FIRST_OK
    assert got[("lab-node-2", "10.99.0.13")].quote().endswith("each in order: ok | T*5)")
    # one connection to each of two NodePorts: the other port's passed, no repeat on one port
    assert got[("lab-node-3", "10.99.0.12")].kind == OK_ELSEWHERE
    vm = got[("outside the cluster", "10.99.0.12")]
    assert vm.kind == OK_ELSEWHERE and vm.quote().startswith("from outside the cluster to lab-node-2 (10.99.0.12): ")
    assert got[("lab-node-2", "10.99.0.11")].kind == "all-fail"


def test_all_fail_when_the_sources_first_connection_was_in_an_earlier_run() -> None:
    got = patterns(AGAIN)
    assert not any(p.kind == FIRST_OK for p in got.values())
    assert got[("lab-node-1", "10.99.0.12")].kind == "all-fail"
    assert got[("lab-node-1", "10.99.0.12")].quote() == (
        "from lab-node-1's pod to lab-node-2 (10.99.0.12): no connection passed in this run (30624: T | 30950: T | "
        "30624: T*5)"
    )


def _ranked(ev: ClusterEvidence, per_test: dict[str, list[PathInfo]]):
    ev.patterns = source_patterns([x for ps in per_test.values() for x in ps], ev.facts)
    findings = [f for f in run_rules(ev) if f.confidence > 0]
    per = {n: [f.as_dict() for f in correlate.explaining(findings, ps, ev.facts)] for n, ps in per_test.items()}
    return correlate.rank(per), findings


def test_per_source_limit_quotes_the_pattern_and_is_surer_with_it() -> None:
    ev, per_test = replay(FIRST)
    (groups, unexplained), findings = _ranked(ev, per_test)
    (f,) = [f for f in findings if f.cause == "per-source-limit"]
    assert f.node == "lab-node-2" and f.confidence == 0.95
    assert f.evidence[2] == (
        "dials: from lab-node-1's pod to lab-node-2:30387 (10.99.0.12) the first connection passed, the next 6 "
        "timed out (SYN without answer; its dials there, each in order: T | ok T*5)"
    )
    assert any(
        e.startswith("dials: from lab-node-3's pod to lab-node-2 (10.99.0.12): connections to another port")
        for e in f.evidence
    )
    assert [x.cause for x in findings] == ["per-source-limit"]  # the pattern's found cause: no pattern-only finding
    assert groups[0].key == ("per-source-limit", "lab-node-2") and unexplained == []
    # the same rule without dial results (--diagnose-only, older recordings): the node's state alone
    ev.patterns = []
    (g,) = [x for x in run_rules(ev) if x.cause == "per-source-limit"]
    assert g.confidence == 0.9 and not any(e.startswith("dials: ") for e in g.evidence)


def test_all_fail_neither_raises_nor_is_quoted() -> None:
    ev, per_test = replay(AGAIN)
    (groups, unexplained), findings = _ranked(ev, per_test)
    (f,) = [f for f in findings if f.cause == "per-source-limit"]
    assert f.confidence == 0.9
    assert [e for e in f.evidence if e.startswith("dials: ")] == [
        "dials: from lab-node-2's pod to lab-node-1 (10.99.0.11): connections to another port passed, those to "
        ":30950 timed out (30950: T | 30624: ok)"
    ]
    assert groups[0].key == ("per-source-limit", "lab-node-2") and unexplained == []


def _without_the_limit(ev: ClusterEvidence) -> None:
    """lab-node-2's recorded iptables with the fault's two `-m recent` rules taken out."""
    ne = ev.nodes["lab-node-2"]
    s = ne.sections["iptables"]
    kept = [line for line in s.text.splitlines() if "-m recent" not in line]
    assert len(kept) == len(s.text.splitlines()) - 2
    ne.sections["iptables"] = Section("iptables", s.rc, "\n".join(kept))
    ne.__dict__.pop("tables", None)


def test_pattern_without_a_node_cause_is_named_with_what_to_look_for() -> None:
    # per-source state the rules cannot read (an nft meter, a cloud firewall): the pattern stays
    ev, per_test = replay(FIRST)
    _without_the_limit(ev)
    (groups, unexplained), findings = _ranked(ev, per_test)
    assert {(f.cause, f.node) for f in findings} == {
        ("per-source-pattern", "lab-node-2"),  # lab-node-1's pod -> lab-node-2
        ("per-source-pattern", "lab-node-3"),  # lab-node-2's pod -> lab-node-3
    }
    f = next(f for f in findings if f.node == "lab-node-2")
    assert f.confidence == 0.4  # the symptom is observed, its cause is not
    assert f.title == (
        "lab-node-2:30387 (10.99.0.12) answered a source's first connection and timed out on its later ones: "
        "per-source state drops them, and no rule found it on lab-node-2 and lab-node-1"
    )
    assert f.evidence == (
        "dials: from lab-node-1's pod to lab-node-2:30387 (10.99.0.12) the first connection passed, the next 6 "
        "timed out (SYN without answer; its dials there, each in order: T | ok T*5)",
    )
    assert f.fix.startswith("look on lab-node-2, on lab-node-1 (the source's node: its NAT and firewall) and ")
    assert "tcp_tw_recycle=1" in f.fix and "-m recent/connlimit/hashlimit" in f.fix
    # it explains only the pattern's paths; the all-fail ones stay unexplained: no cause from missing evidence
    explained = {n for g in groups for n in g.failures}
    assert "suites/test_stability.py::test_nodeport_connections_all_succeed[ipv4-from-lab-node-1]" in explained
    assert "suites/test_nodeport.py::test_nodeport_from_pod[ipv4-lab-node-2-to-lab-node-2]" in unexplained


def test_no_pattern_and_no_finding_without_attempts() -> None:
    # an older recording: paths without attempts; with the limit gone nothing is said
    ev, per_test = replay(FIRST)
    _without_the_limit(ev)
    bare = [PathInfo(p.check, p.src_node, p.dst_node, p.target, p.error) for ps in per_test.values() for p in ps]
    assert source_patterns(bare, ev.facts) == []
    ev.patterns = []
    assert [f for f in run_rules(ev) if f.confidence > 0] == []


@pytest.mark.parametrize(
    ("attempts", "same_host", "kind"),
    [
        ("ok T*4", "", FIRST_OK),
        ("ok*3 T*5", "", FIRST_OK),  # a limit of 3 (hashlimit burst, connlimit 3)
        ("T*5", "30387: ok", FIRST_OK),  # the single dial to the same port won
        ("ok T", "", "other"),  # a single timeout after it: too little to say "the next ones"
        ("T", "31366: ok", OK_ELSEWHERE),
        ("ok*17 T ok*2", "", "random-loss"),  # nodeport-firewall's masqueraded source port, conntrack races
        ("T ok T*3", "", "random-loss"),
        ("T*5", "30387: T; 31366: T", "all-fail"),
        ("ok R*4", "", "other"),  # refused is an answer, not per-source silence
        ("T*3", "30387/udp: ok", "all-fail"),  # another protocol's dial is not compared
    ],
)
def test_classification(attempts: str, same_host: str, kind: str) -> None:
    # hand-written sequences in the recorded format (the lab recordings above are the real ones)
    ev = load_case("healthy")
    p = PathInfo(
        "stability", "lab-node-2", "lab-node-1", "192.0.2.11:30387", "timeout", attempts=attempts, same_host=same_host
    )
    (got,) = source_patterns([p], ev.facts)
    assert got.kind == kind


def test_tw_recycle_quotes_the_pattern_is_surer_with_it_and_leaves_no_pattern_finding() -> None:
    # tw_recycle_transcribed (lab-node-1 with tcp_tw_recycle=1, timestamps on, PAWS rejects counted) and a
    # hand-written stability path to lab-node-1's NodePort in the recorded format
    p = PathInfo("stability", "lab-node-2", "lab-node-1", "192.0.2.11:31080", "timeout", attempts="ok T*4")
    quote = (
        "dials: from lab-node-2's pod to lab-node-1:31080 (192.0.2.11) the first connection passed, the next 4 "
        "timed out (SYN without answer; its dials there, each in order: ok T*4)"
    )
    for counted, before, after in ((True, 0.95, 0.95), (False, 0.75, 0.9)):
        ev = load_case("tw_recycle_transcribed")
        if not counted:  # no PAWS reject counted (yet): the sysctl alone, then with the pattern
            ne = ev.nodes["lab-node-1"]
            for name in ("netstat", "nstat"):
                ne.sections[name] = Section(name, 0, "")
                ne.__dict__.pop(name, None)
        (f,) = [f for f in run_rules(ev) if f.cause == "tcp-tw-recycle"]
        assert f.confidence == before and quote not in f.evidence
        ev.patterns = source_patterns([p], ev.facts)
        findings = [f for f in run_rules(ev) if f.confidence > 0]
        (f,) = [f for f in findings if f.cause == "tcp-tw-recycle"]
        assert f.confidence == after and f.evidence[-1] == quote
        assert not any(x.cause == "per-source-pattern" for x in findings)


def test_the_diagnosis_of_a_failed_test_reads_the_pattern_from_its_own_paths() -> None:
    from netconform.diagnose import Diagnoser
    from netconform.nodes import AccessSpec, NodeHosts

    ev, _ = replay(FIRST)

    class Recorded(Diagnoser):  # the real Diagnoser; only where evidence comes from is replaced
        def facts(self):  # type: ignore[no-untyped-def]
            return ev.facts

        def _gather(self, node):  # type: ignore[no-untyped-def]
            return ev.nodes[node]

    diag = Recorded(None, NodeHosts(AccessSpec("none")), "netconform-test", [], sorted(ev.nodes))
    d = LAB / FIRST
    book = {n: SourceOutcome.from_dict(o) for n, o in json.loads((d / "dials.json").read_text())["outcomes"].items()}
    results = book["lab-node-1"].results
    (stab,) = [r for r in results if r.target_id.startswith("stability:nodeport")]
    props: list[tuple[str, object]] = []
    record_path(props, stab.path_info(None, results))
    diagnosis = diag.diagnose_test("suites/test_stability.py::t", read_paths(props))
    assert diagnosis is not None
    assert diagnosis.text.startswith("most likely: per-source-limit on lab-node-2 — ")
    assert "cause: per-source-limit (confidence 0.9)" in diagnosis.text  # Finding.render: one decimal
    assert (
        "    dials: from lab-node-1's pod to lab-node-2:30387 (10.99.0.12) the first connection passed, the next 6 "
        "timed out" in diagnosis.text
    )
    assert diagnosis.findings[0]["confidence"] == 0.95


def test_the_runs_own_paths_give_each_failed_test_the_pattern_it_printed() -> None:
    # per_source_limit: the run recorded with this writer (paths.json carries attempts and same_host); each
    # failed test's diagnosis reads the pattern from its own paths, as Diagnoser.diagnose does
    d = LAB / RECORDED
    facts = facts_from_dict(json.loads((d / "facts.json").read_text()))
    nodes = {f.stem: NodeEvidence.from_output(f.stem, f.read_text()) for f in sorted(d.glob("lab-node-*.txt"))}
    recorded = json.loads((d / "paths.json").read_text())
    assert all("attempts" in p for ps in recorded.values() for p in ps)
    quoted: dict[str, list[str]] = {}
    for nodeid, props in recorded.items():
        paths = correlate.failed_paths(read_paths([("netconform_path", p) for p in props]))
        ev = ClusterEvidence(facts, nodes, source_patterns(paths, facts))
        (top, *_) = correlate.explaining([f for f in run_rules(ev) if f.confidence > 0], paths, facts)
        assert (top.cause, top.node) == ("per-source-limit", "lab-node-2")
        quoted[nodeid.split("::")[1]] = [e for e in top.evidence if e.startswith("dials: ")]
        assert top.confidence == (
            0.95 if any("the first connection passed" in e for e in quoted[nodeid.split("::")[1]]) else 0.9
        )
    assert quoted["test_nodeport_connections_all_succeed[ipv4-from-lab-node-1]"] == [
        "dials: from lab-node-1's pod to lab-node-2:31236 (10.99.0.12) the first connection passed, the next 6 "
        "timed out (SYN without answer; its dials there, each in order: ok T*5 | T)"
    ]
    assert quoted["test_nodeport_connections_all_succeed[ipv4-from-lab-node-2]"] == [
        "dials: from lab-node-2's pod to lab-node-3:31236 (10.99.0.13) the first connection passed, the next 5 "
        "timed out (SYN without answer; its dials there, each in order: T*5 | ok)"
    ]
    assert quoted["test_nodeport_from_pod[ipv4-lab-node-2-to-lab-node-2]"] == []  # all failed: nothing to quote
    assert sum(1 for q in quoted.values() if any("the first connection passed" in e for e in q)) == 5


def test_udp_and_full_size_paths_give_no_pattern() -> None:
    # the mtu check's full-size datagrams time out where small ones to the same pod port pass: not per-source
    ev = load_case("healthy")
    udp = PathInfo(
        "pod_to_pod", "lab-node-2", "lab-node-1", "192.0.2.11:8081", "timeout", proto="udp", attempts="ok T*4"
    )
    mtu = PathInfo(
        "mtu", "lab-node-2", "lab-node-1", "192.0.2.11:8080", "timeout", attempts="T*3", same_host="8080: ok"
    )
    assert source_patterns([udp, mtu], ev.facts) == []
