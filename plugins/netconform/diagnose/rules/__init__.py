"""One module per cause; each exposes `rule(ev: ClusterEvidence) -> list[Finding]` (pure)."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from ..evidence import ClusterEvidence
from ..model import NOTHING, Finding
from . import (
    br_netfilter,
    conntrack,
    coredns,
    flannel_arp,
    flannel_fdb,
    flannel_route,
    forward_policy,
    hairpin,
    inspect,
    ip_forward,
    kube_proxy,
    masquerade,
    mtu,
    nodeport_firewall,
    rp_filter,
    service_endpoints,
    tw_recycle,
    vxlan_port,
)

__all__ = ["ALL_RULES", "Rule", "run_rules"]

Rule = Callable[[ClusterEvidence], list[Finding]]

ALL_RULES: dict[str, Rule] = {
    m.CAUSE: m.rule
    for m in (
        flannel_arp,
        flannel_fdb,
        flannel_route,
        vxlan_port,
        ip_forward,
        forward_policy,
        masquerade,
        tw_recycle,
        mtu,
        br_netfilter,
        rp_filter,
        kube_proxy,
        service_endpoints,
        nodeport_firewall,
        hairpin,
        coredns,
        conntrack,
        inspect,
    )
}


def run_rules(ev: ClusterEvidence, rules: dict[str, Rule] | None = None) -> list[Finding]:
    """Run every rule; a rule that raises becomes a finding instead of breaking the report."""
    out: list[Finding] = []
    for cause, fn in (rules or ALL_RULES).items():
        try:
            out.extend(fn(ev))
        except Exception as exc:  # boundary: a bug in one rule must not hide the others
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            out.append(Finding("rule-error", f"rule {cause} failed: {last}", 0.0, None, (), "", (NOTHING,)))
    return out
