"""The diagnosis rules: one module per cause, each declaring itself as `RULE = Rule(...)` (rules/_rule.py)
with a pure `rule(ev: ClusterEvidence) -> list[Finding]`. A new rule is its module plus its name in `MODULES`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from importlib import import_module

from ..datapath import datapath, not_covered
from ..evidence import ClusterEvidence
from ..model import NOTHING, Finding
from ._consequences import fold
from ._rule import Rule

__all__ = ["ALL_RULES", "MODULES", "RULES", "Rule", "applicable", "categories", "run_rules"]

# The rule modules of this package, in report order: the report's categories follow it (first match
# wins in Allure, so the order is part of the report). Rules run in this order too.
MODULES = (
    "flannel_arp",
    "flannel_fdb",
    "flannel_route",
    "vxlan_port",
    "ip_forward",
    "forward_policy",
    "br_netfilter",
    "mtu",
    "mtu_uplink",
    "mtu_path",
    "masquerade",
    "kube_proxy",
    "service_endpoints",
    "nodeport_firewall",
    "hairpin",
    "pod_sandbox",
    "coredns",
    "coredns_answer",
    "conntrack",
    "tw_recycle",
    "per_source",
    "pod_route",
    "rp_filter",
    "inspect",
)


def _declared(module: str) -> Rule:
    rule = getattr(import_module(f"{__name__}.{module}"), "RULE", None)
    if not isinstance(rule, Rule):
        raise TypeError(f"{__name__}.{module} declares no RULE = Rule(...)")
    return rule


RULES: tuple[Rule, ...] = tuple(_declared(m) for m in MODULES)
ALL_RULES: dict[str, Callable[[ClusterEvidence], list[Finding]]] = {r.cause: r.run for r in RULES}


def categories() -> list[tuple[str, str]]:
    """(cause, category) of every cause a rule reports as a root cause, in report order."""
    return [c for r in RULES for c in r.categories()]


def applicable(ev: ClusterEvidence, rules: Sequence[Rule] = RULES) -> dict[str, Rule]:
    """The rules that apply to the cluster's datapath, by cause (a rule never judges a datapath it does not know)."""
    dp = datapath(ev)
    return {r.cause: r for r in rules if r.applies.cover(dp)}


def run_rules(ev: ClusterEvidence, rules: Sequence[Rule] = RULES) -> list[Finding]:
    """Run every rule that applies; what the rules do not cover is said once (`not-covered`, no cause);
    a rule that raises becomes a finding instead of breaking the report; a finding that follows from
    another on its node is folded into it (rules/_consequences.py)."""
    try:
        todo: Sequence[Rule] = list(applicable(ev, rules).values())
        out: list[Finding] = not_covered(ev, datapath(ev))
    except Exception as exc:  # boundary: a datapath we cannot read must not hide the rules
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        todo = rules
        out = [_error(f"datapath detection failed: {last}")]
    for r in todo:
        try:
            out.extend(r.run(ev))
        except Exception as exc:  # boundary: a bug in one rule must not hide the others
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            out.append(_error(f"rule {r.cause} failed: {last}"))
    return fold(out)


def _error(title: str) -> Finding:
    return Finding(cause="rule-error", title=title, confidence=0.0, node=None, evidence=(), fix="", explains=(NOTHING,))
