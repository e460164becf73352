"""Replay what the diagnosis read on the real lab under each injected fault (tests/data/recorded/lab).

Each case directory was written by `pytest suites/ --diagnose-record DIR` on the 3-node lab
(`ci/lab fault NAME --node lab-node-2`): the agent's real gather output per node, the API facts,
and the `netconform_path` of every failed test. dxo_* were recorded with --diagnose-only (the
suite stays green under those faults). See tests/data/recorded/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netconform.diagnose import correlate
from netconform.diagnose.evidence import ClusterEvidence, NodeEvidence
from netconform.diagnose.facts_record import facts_from_dict
from netconform.diagnose.rules import run_rules
from netconform.dialing.path import read_paths

LAB = Path(__file__).resolve().parents[2] / "data" / "recorded" / "lab"

# case -> (top-ranked cause, its node); every failure of the run must be explained
EXPECTED = {
    "stale_arp": ("stale-flannel-arp", "lab-node-2"),
    "stale_arp_fdb": ("stale-flannel-arp", "lab-node-2"),
    "ip_masq": ("masquerade-overlay", "lab-node-2"),
    "missing_route": ("missing-flannel-route", "lab-node-2"),
    "vxlan_blocked": ("vxlan-port-blocked", "lab-node-2"),
    "forward_drop": ("forward-drop", "lab-node-2"),
    "bridge_nf_off": ("bridge-nf-call-iptables-off", "lab-node-2"),
    "kube_proxy_down": ("kube-proxy-rules-missing", "lab-node-2"),
    "nodeport_firewall": ("nodeport-blocked", "lab-node-2"),
    "dns_down": ("coredns-down", None),
    # issue 17 item 4: the flannel CNI binary taken out of lab-node-2's /opt/cni/bin; its probe pods never
    # started (FailedCreatePodSandBox), the paths from and to it failed with pods_not_started
    "cni_plugin_missing": ("pod-sandbox-failing", "lab-node-2"),
    # issue 10 5(d); per_source_limit's paths carry their attempts (test_dialseq.py reads the pattern)
    "per_source_limit": ("per-source-limit", "lab-node-2"),
    "per_source_limit_first": ("per-source-limit", "lab-node-2"),
    "per_source_limit_again": ("per-source-limit", "lab-node-2"),
    # issue 17 item 2: the MTU mechanisms, each named by what is short
    "mtu_uplink": ("mtu-uplink-too-small", "lab-node-2"),
    "mtu_overlay": ("mtu-mismatch", "lab-node-2"),
    "mtu_overlay_hand": ("mtu-mismatch", "lab-node-2"),
    # issue 17 item 1: CoreDNS answering one name wrongly (a hosts / a template block in its Corefile)
    "dns_hosts": ("coredns-wrong-answer", None),
    "dns_template": ("coredns-wrong-answer", None),
    "dns_hosts_again": ("coredns-wrong-answer", None),
}
HEALTH = {  # --diagnose-only: the only findings
    "dxo_ip_forward_off": {("ip-forward-off", "lab-node-2")},
    "dxo_mtu_mismatch": {("mtu-mismatch", "lab-node-2")},
    "dxo_healthy": set(),
}


def load(case: str) -> tuple[ClusterEvidence, dict[str, list[dict]]]:
    d = LAB / case
    facts = facts_from_dict(json.loads((d / "facts.json").read_text()))
    ev = ClusterEvidence(
        facts, {f.stem: NodeEvidence.from_output(f.stem, f.read_text()) for f in sorted(d.glob("lab-node-*.txt"))}
    )
    paths = json.loads((d / "paths.json").read_text()) if (d / "paths.json").exists() else {}
    return ev, paths


def ranked(case: str):
    ev, recorded = load(case)
    findings = [f for f in run_rules(ev) if f.confidence > 0]
    per = {}
    for nodeid, props in recorded.items():
        paths = correlate.failed_paths(read_paths([("netconform_path", p) for p in props]))
        per[nodeid] = [f.as_dict() for f in correlate.explaining(findings, paths, ev.facts)]
    return correlate.rank(per), findings


@pytest.mark.parametrize("case", sorted(c for c in EXPECTED if (LAB / c).is_dir()))
def test_lab_fault_top_cause_and_every_failure_explained(case: str) -> None:
    (groups, unexplained), _ = ranked(case)
    assert groups, case
    assert groups[0].key == EXPECTED[case]
    assert unexplained == []
    # the top cause explains every failure of the run: one cause, many symptoms
    assert len(groups[0].failures) == sum(len(g.primary) for g in groups)


@pytest.mark.parametrize("case", sorted(c for c in HEALTH if (LAB / c).is_dir()))
def test_lab_health_report(case: str) -> None:
    _, findings = ranked(case)
    assert {(f.cause, f.node) for f in findings} == HEALTH[case]


def test_lab_stale_arp_names_wrong_and_expected_mac_owner_and_fix() -> None:
    if not (LAB / "stale_arp").is_dir():
        pytest.skip("stale_arp not recorded")
    (groups, _), findings = ranked("stale_arp")
    facts = load("stale_arp")[0].facts
    top = groups[0]
    for peer in ("lab-node-1", "lab-node-3"):
        nf = facts.nodes[peer]
        assert any(f"-> ee:ee:ee:00:00:01 (expected {nf.vtep_mac}, owned by {peer}" in t for t in top.titles)
        assert (
            f"on lab-node-2: ip neigh replace {nf.subnet_gw} lladdr {nf.vtep_mac} dev flannel.1 nud permanent"
            in " ".join(top.fixes)
        )


def test_lab_ip_masq_quotes_the_rule_and_gives_a_fix() -> None:
    _, findings = ranked("ip_masq")
    f = next(f for f in findings if f.cause == "masquerade-overlay")
    assert any(e.endswith("-A POSTROUTING -s 10.244.1.0/24 ! -o cni0 -j MASQUERADE") for e in f.evidence)
    assert f.fix.startswith("on lab-node-2: iptables -t nat -D POSTROUTING -s 10.244.1.0/24 ! -o cni0 -j MASQUERADE")


def test_lab_mtu_uplink_names_the_uplink_and_the_mtu_that_carries_the_overlay() -> None:
    # eth0 lowered to 1400 in lab-node-2's netns under flannel.1's 1450: the pods match the overlay, the
    # uplink is short; the fix applied as printed (`ip link set eth0 mtu 1500`) made the next run green
    (groups, _), findings = ranked("mtu_uplink")
    (f,) = findings
    assert f.evidence == ("lab-node-2$ ip link: flannel.1 mtu 1450 > eth0 mtu 1400 - 50",)
    assert f.fix.startswith("on lab-node-2: ip link set eth0 mtu 1500 ")
    assert "set flannel.1 and the pods' MTU to 1350" in f.fix
    assert "CNI/pod MTU" not in f.fix  # the pods' 1450 is what flannel.1 carries: not the thing to change
    assert len(groups[0].failures) == 4


@pytest.mark.parametrize(("case", "lowered"), [("mtu_overlay", 1000), ("mtu_overlay_hand", 1200)])
def test_lab_mtu_overlay_lowered_under_the_pods_is_raised_back(case: str, lowered: int) -> None:
    # flannel.1 lowered under the pods' 1450 while eth0 (1500) carries 1450 + 50: raising flannel.1 is the
    # whole fix (applied as printed, the next run was green); the pods are right
    _, findings = ranked(case)
    (f,) = findings
    assert f.fix == "on lab-node-2: ip link set flannel.1 mtu 1450"
    assert f"lab-node-2$ ip link show cni0: mtu 1450 > flannel.1 mtu {lowered}" in f.evidence
    assert "lab-node-2$ ip link: eth0 mtu 1500 - 50 carries 1450" in f.evidence


def test_a_missing_cni_plugin_is_named_with_the_first_of_several_bin_dirs() -> None:
    """containerd lists its CNI bin dirs as a Go slice; the recorded case's message with a second dir added."""
    ev, _ = load("cni_plugin_missing")
    node = "lab-node-2"
    ev.facts.sandbox_failures[node] = ev.facts.sandbox_failures[node].replace(
        "[/opt/cni/bin]", "[/opt/cni/bin /usr/lib/cni]"
    )
    found = [f for f in run_rules(ev) if f.cause == "pod-sandbox-failing"]
    assert [f.title for f in found] == [
        f"{node}: the CNI plugin flannel is not in /opt/cni/bin: no pod can start there"
    ]
