"""Nodes or commands we could not read: said plainly, never a crash."""

from __future__ import annotations

from ..datapath import datapath
from ..evidence import ClusterEvidence
from ..model import NOTHING, Finding
from ._rule import Rule

CAUSE = "not-inspected"
# sections without which the main rules are blind
KEY_SECTIONS = ("link", "neigh_flannel", "fdb_flannel", "route", "iptables", "sysctl")


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    # kube-proxy's nftables mode is read from `nft -j list ruleset` only
    keys = KEY_SECTIONS + (("nft",) if datapath(ev).proxy == "nftables" else ())
    for name, ne in sorted(ev.nodes.items()):
        if ne.error:
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"could not inspect {name}: {ne.error}",
                    confidence=0.0,
                    node=name,
                    evidence=(),
                    fix="",
                    explains=(NOTHING,),
                )
            )
            continue
        problems = []
        for s in keys:
            p = ne.problem(s)
            # no flannel.1 at all is a finding of its own (flannel_route), not an inspection gap
            if p and not (s in ("neigh_flannel", "fdb_flannel") and "flannel.1" not in ne.links):
                problems.append(f"{s}: {p}")
        if problems:
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"could not fully inspect {name}: " + "; ".join(problems),
                    confidence=0.0,
                    node=name,
                    evidence=(),
                    fix="give the agent the tool or permission",
                    explains=(NOTHING,),
                )
            )
    return out


# category None: its findings are notes (confidence 0), never a failure's root cause
RULE = Rule(cause=CAUSE, category=None, run=rule)
