"""kube-proxy's rules missing on a node whose uplink MTU is short are that MTU cause (rules/_consequences.py):
recorded kube_proxy_missing on lab-node-1, with its eth0 read at 1400 as `ci/lab fault mtu-uplink` leaves it."""

from __future__ import annotations

from netconform.diagnose.evidence import NodeEvidence, Section
from netconform.diagnose.rules import run_rules

from .conftest import RECORDED, load_case
from .test_coredns_answer import KUBERNETES, _one_pod_answers
from .test_lab_recorded import load


def uplink_at_1400(case: str, node: str = "lab-node-1", recorded_in: str | None = None):
    """The case's evidence, `node`'s eth0 at 1400 (its output from `recorded_in`, default the case)."""
    ev = load_case(case)
    raw = (RECORDED / (recorded_in or case) / f"{node}.txt").read_text()
    text = "\n".join(line.replace("mtu 1500", "mtu 1400") if ": eth0@" in line else line for line in raw.splitlines())
    ev.nodes[node] = NodeEvidence.from_output(node, text)
    return ev


def causes(findings) -> set[tuple[str, str | None]]:
    return {(f.cause, f.node) for f in findings if f.confidence > 0 and not f.risk}


def test_missing_rules_alone_stay_a_kube_proxy_cause() -> None:
    assert ("kube-proxy-rules-missing", "lab-node-1") in causes(run_rules(load_case("kube_proxy_missing")))


def test_missing_rules_beside_a_short_uplink_are_folded_into_the_mtu_cause() -> None:
    found = run_rules(uplink_at_1400("kube_proxy_missing"))
    assert causes(found) == {("mtu-uplink-too-small", "lab-node-1")}
    [mtu] = [f for f in found if f.cause == "mtu-uplink-too-small"]
    assert any("kube-proxy rules for" in e for e in mtu.evidence)
    assert any("kube-proxy's connection to the API server" in e and "watch stalls" in e for e in mtu.evidence)
    assert mtu.fix.startswith("on lab-node-1: ip link set eth0 mtu 1500 ")
    assert mtu.fix.endswith(
        "; either way, then on lab-node-1: restart kube-proxy (its stalled watch re-syncs every rule)"
    )
    # it now explains what the kube-proxy finding explained: the Service paths from that node
    plain = [f for f in run_rules(load_case("kube_proxy_missing")) if f.cause == "kube-proxy-rules-missing"]
    assert plain and all(s in mtu.explains for f in plain for s in f.explains)


def test_a_short_uplink_on_another_node_folds_nothing() -> None:
    found = run_rules(uplink_at_1400("kube_proxy_missing", node="lab-node-2", recorded_in="healthy"))
    assert {("kube-proxy-rules-missing", "lab-node-1"), ("mtu-uplink-too-small", "lab-node-2")} <= causes(found)
    [mtu] = [f for f in found if f.cause == "mtu-uplink-too-small"]
    assert "restart kube-proxy" not in mtu.fix


def test_a_coredns_pod_answering_otherwise_on_the_short_node_is_folded_too() -> None:
    """test_coredns_answer's odd pod (the lab's dns_hosts, the block gone, one pod answering the old entry),
    its node's eth0 read at 1400: that pod's stale view is the stalled watch, its delete follows the MTU fix."""
    ev, _ = load("dns_hosts")
    ev.facts.corefile = ev.facts.corefile and "\n".join(
        x for i, x in enumerate(ev.facts.corefile.splitlines(), 1) if not 3 <= i <= 6
    )
    pods = sorted((p for p in ev.facts.coredns if p.ip), key=lambda p: p.ip or "")
    _one_pod_answers(ev, KUBERNETES, pods[1].ip or "", "10.96.99.99", "10.96.0.1")
    node = pods[0].node or ""
    ne = ev.nodes[node]
    for name, sec in ne.sections.items():
        lines = (x.replace("mtu 1500", "mtu 1400") if ": eth0@" in x else x for x in sec.text.splitlines())
        ne.sections[name] = Section(name, sec.rc, "\n".join(lines))
    ne.__dict__.pop("links", None)
    found = run_rules(ev)
    assert causes(found) == {("mtu-uplink-too-small", node)}
    [mtu] = [f for f in found if f.confidence > 0]
    assert any(
        e.startswith(f"CoreDNS pods answer {KUBERNETES} (A) differently: pod {pods[0].name}") for e in mtu.evidence
    )
    assert mtu.fix.endswith(
        f"; either way, then kubectl -n kube-system delete pod {pods[0].name} "
        "(its stalled watch left it answering from an old view)"
    )
