"""Replay what the diagnosis read on the lab's variants (tests/data/recorded/variants/<variant>/<case>).

Recorded with the lab up as each variant (`ci/lab up --proxy-mode nftables`, `--flannel-backend host-gw`,
`--proxy-mode nftables --ip-family dual`, and the default), as the least-privilege ServiceAccount:
dxo_healthy = `pytest suites/ --diagnose-only --diagnose-record DIR` with no fault; <fault> =
`ci/lab fault <fault> --node lab-node-2`, then `pytest suites/ -p no:randomly --dial-timeout 0.5
--stability-count 20 --diagnose-record DIR`. See tests/data/recorded/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from netconform.diagnose import correlate
from netconform.diagnose.datapath import datapath
from netconform.diagnose.evidence import ClusterEvidence, NodeEvidence
from netconform.diagnose.facts import facts_from_dict
from netconform.diagnose.model import Finding
from netconform.diagnose.rules import run_rules

VARIANTS = Path(__file__).resolve().parents[2] / "data" / "recorded" / "variants"
NODE = "lab-node-2"

# variant -> (proxy mode, flannel backend, IPv6 pods)
SHAPE = {
    "iptables-vxlan-ipv4": ("iptables", "vxlan", False),
    "nftables-vxlan-ipv4": ("nftables", "vxlan", False),
    "iptables-hostgw-ipv4": ("iptables", "host-gw", False),
    "nftables-vxlan-dual": ("nftables", "vxlan", True),
}
# fault -> the top-ranked cause on lab-node-2, whatever the variant
CAUSE = {
    "stale-arp": "stale-flannel-arp",
    "missing-route": "missing-flannel-route",
    "ip-masq": "masquerade-overlay",
    "kube-proxy-down": "kube-proxy-rules-missing",
    "nodeport-firewall": "nodeport-blocked",
}


# failures of a recorded run that no rule explains, each looked at: (variant, fault) -> nodeids
UNEXPLAINED = {
    # 2 of 20 attempts from lab-node-3 to lab-node-1's NodePort timed out, a path the fault (on lab-node-2's
    # NodePorts) does not touch; no counter on any node explains them (conntrack insert_failed 0 on all three)
    ("nftables-vxlan-ipv4", "nodeport-firewall"): [
        "suites/test_stability.py::test_nodeport_connections_all_succeed[ipv4-from-lab-node-3]"
    ],
}


def recorded(kind: str) -> list[tuple[str, str]]:
    out = []
    for v in sorted(SHAPE):
        for d in sorted((VARIANTS / v).glob("*")) if (VARIANTS / v).is_dir() else []:
            if d.is_dir() and (d.name == "dxo_healthy") == (kind == "healthy"):
                out.append((v, d.name))
    return out


def load(variant: str, case: str) -> tuple[ClusterEvidence, dict[str, list[dict[str, Any]]]]:
    d = VARIANTS / variant / case
    facts = facts_from_dict(json.loads((d / "facts.json").read_text()))
    ev = ClusterEvidence(
        facts, {f.stem: NodeEvidence.from_output(f.stem, f.read_text()) for f in sorted(d.glob("lab-node-*.txt"))}
    )
    paths = json.loads((d / "paths.json").read_text()) if (d / "paths.json").exists() else {}
    return ev, paths


def ranked(variant: str, case: str) -> tuple[tuple[list[correlate.CauseGroup], list[str]], list[Finding]]:
    ev, paths = load(variant, case)
    findings = [f for f in run_rules(ev) if f.confidence > 0]
    per = {}
    for nodeid, props in paths.items():
        failed = correlate.failed_paths([("netconform_path", p) for p in props], nodeid)
        per[nodeid] = [f.as_dict() for f in correlate.explaining(findings, failed, ev.facts)]
    return correlate.rank(per), findings


@pytest.mark.parametrize(("variant", "case"), recorded("healthy"), ids=[f"{v}/{c}" for v, c in recorded("healthy")])
def test_healthy_variant_has_no_finding_and_is_covered(variant: str, case: str) -> None:
    ev, _ = load(variant, case)
    findings = run_rules(ev)
    assert [f.render() for f in findings if f.confidence > 0] == []
    assert [f.title for f in findings if f.cause in ("not-covered", "not-inspected", "rule-error")] == []
    proxy, backend, v6 = SHAPE[variant]
    dp = datapath(ev)
    assert (dp.proxy, dp.backend) == (proxy, backend)
    assert all(bool(n.pod_cidrs_v6) == v6 for n in ev.facts.nodes.values())


@pytest.mark.parametrize(("variant", "case"), recorded("faults"), ids=[f"{v}/{c}" for v, c in recorded("faults")])
def test_fault_on_variant_top_cause_node_and_every_failure_explained(variant: str, case: str) -> None:
    (groups, unexplained), _ = ranked(variant, case)
    assert groups, (variant, case)
    assert groups[0].key == (CAUSE[case], NODE), [g.key for g in groups]
    assert unexplained == UNEXPLAINED.get((variant, case), [])
