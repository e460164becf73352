"""Which datapath the rules judge (diagnose.datapath), on the real lab recordings.

A datapath the rules do not know is named once as not covered and yields no cause. Those cases are
derived from the real recording of the healthy nftables lab (tests/data/recorded/variants/
nftables-vxlan-ipv4/dxo_healthy) by taking out what such a datapath does not have: kube-proxy's table
(kube-proxy replaced by an eBPF datapath), flannel's device, subnet file and annotations (another
overlay). Nothing is added that a node did not print.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from netconform.diagnose.datapath import datapath
from netconform.diagnose.evidence import ClusterEvidence, NodeEvidence, Section
from netconform.diagnose.facts_record import facts_from_dict
from netconform.diagnose.rules import run_rules

LAB = Path(__file__).resolve().parents[2] / "data" / "recorded" / "variants" / "nftables-vxlan-ipv4" / "dxo_healthy"


def load(strip: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> ClusterEvidence:
    """The healthy default lab; `strip`: section -> regex of lines taken out; `drop`: sections removed."""
    facts = facts_from_dict(json.loads((LAB / "facts.json").read_text()))
    ev = ClusterEvidence(facts)
    for f in sorted(LAB.glob("lab-node-*.txt")):
        ne = NodeEvidence.from_output(f.stem, f.read_text())
        for name, pattern in (strip or {}).items():
            s = ne.sections[name]
            kept = "\n".join(line for line in s.text.splitlines() if not re.search(pattern, line))
            ne.sections[name] = Section(name, s.rc, kept)
        for name in drop:
            ne.sections.pop(name, None)
        ev.nodes[f.stem] = ne
    return ev


def test_nftables_lab_is_nftables_and_vxlan() -> None:
    dp = datapath(load())
    assert (dp.proxy, dp.backend, dp.foreign) == ("nftables", "vxlan", ())
    assert [f for f in run_rules(load()) if f.cause == "not-covered"] == []


def test_no_kube_proxy_anywhere_is_not_covered_never_a_cause() -> None:
    # what a node looks like when an eBPF datapath replaced kube-proxy: no kube-proxy table, no KUBE-* chain
    ev = load(strip={"iptables": r"KUBE-", "nft": r"."})
    assert datapath(ev).proxy is None
    findings = run_rules(ev)
    assert [f for f in findings if f.confidence > 0] == []
    (note,) = [f for f in findings if f.cause == "not-covered"]
    assert "no kube-proxy rules on any node inspected" in note.title and note.confidence == 0


def test_nft_unreadable_on_one_node_is_a_gap_not_a_cause() -> None:
    ev = load()
    ev.nodes["lab-node-2"].sections["nft"] = Section("nft", 127, "sh: nft: not found")
    findings = run_rules(ev)
    assert [f for f in findings if f.confidence > 0] == []
    (gap,) = [f for f in findings if f.cause == "not-inspected"]
    assert gap.title == "could not fully inspect lab-node-2: nft: command not found (sh: nft: not found)"


def test_the_configmap_mode_wins_and_ipvs_is_not_judged() -> None:
    ev = load(strip={"iptables": r"KUBE-", "nft": r"."})
    ev.facts.proxy_mode = "ipvs"
    findings = run_rules(ev)
    assert [f for f in findings if f.confidence > 0] == []
    (note,) = [f for f in findings if f.cause == "not-covered"]
    assert "kube-proxy mode ipvs (ConfigMap kube-system/kube-proxy): its rules are not judged" in note.title


def test_an_overlay_that_is_not_flannel_gets_no_flannel_rule() -> None:
    # no flannel.1, no subnet.env: not flannel's vxlan or host-gw, so no "missing flannel.1" cause
    ev = load(strip={"link": r"flannel\.1|^\s"}, drop=("subnet_env", "neigh_flannel", "fdb_flannel"))
    for name, nf in ev.facts.nodes.items():
        ev.facts.nodes[name] = dataclasses.replace(nf, backend_type=None, vtep_mac=None, backend_data="")
    dp = datapath(ev)
    assert dp.backend is None
    findings = run_rules(ev)
    assert [f for f in findings if f.confidence > 0] == []
    (note,) = [f for f in findings if f.cause == "not-covered"]
    assert "overlay neighbours, FDB, routes and MTU are not judged" in note.title


# Cilium's own egress masquerade, as the Cilium lab's lab-node-1 printed it (there in CILIUM_POST_nat,
# jumped to from POSTROUTING): pod traffic leaving by anything but cilium_* is masqueraded
CILIUM_MASQ = '-A POSTROUTING -s 10.244.0.0/24 ! -d 10.244.0.0/24 ! -o cilium_+ -m comment --comment "cilium masquerade non-cluster" -j MASQUERADE'


def with_cilium_masquerade(ev: ClusterEvidence) -> ClusterEvidence:
    s = ev.nodes["lab-node-1"].sections["iptables"]
    head, nat = s.text.split("*nat\n", 1)
    body, tail = nat.split("COMMIT\n", 1)
    ev.nodes["lab-node-1"].sections["iptables"] = Section(
        "iptables", s.rc, f"{head}*nat\n{body}{CILIUM_MASQ}\nCOMMIT\n{tail}"
    )
    return ev


def test_the_masquerade_rule_judges_flannels_devices_only() -> None:
    # on flannel the same rule catches pod->pod traffic out flannel.1: a cause (so the test below can fail)
    assert "masquerade-overlay" in {f.cause for f in run_rules(with_cilium_masquerade(load()))}
    ev = load(strip={"link": r"flannel\.1|^\s"}, drop=("subnet_env", "neigh_flannel", "fdb_flannel"))
    for name, nf in ev.facts.nodes.items():
        ev.facts.nodes[name] = dataclasses.replace(nf, backend_type=None, vtep_mac=None, backend_data="")
    findings = run_rules(with_cilium_masquerade(ev))
    assert [f.cause for f in findings if f.confidence > 0] == []
