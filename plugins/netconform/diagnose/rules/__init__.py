"""One module per cause; each exposes `rule(ev: ClusterEvidence) -> list[Finding]` (pure)."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from ..datapath import datapath, not_covered
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
    per_source,
    pod_route,
    rp_filter,
    service_endpoints,
    tw_recycle,
    vxlan_port,
)

__all__ = ["ALL_RULES", "Rule", "applicable", "run_rules"]

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
        per_source,
        mtu,
        br_netfilter,
        rp_filter,
        kube_proxy,
        service_endpoints,
        nodeport_firewall,
        pod_route,
        hairpin,
        coredns,
        conntrack,
        inspect,
    )
}


# rules that judge flannel's VXLAN device (flannel.1): only on the vxlan backend
VXLAN_ONLY = {flannel_arp.CAUSE, flannel_fdb.CAUSE, vxlan_port.CAUSE, mtu.CAUSE}
# rules that judge flannel's routes: on a backend they know (vxlan, host-gw)
FLANNEL_ONLY = VXLAN_ONLY | {flannel_route.CAUSE}


def applicable(ev: ClusterEvidence, rules: dict[str, Rule] | None = None) -> dict[str, Rule]:
    """The rules that apply to the cluster's datapath (a rule never judges a datapath it does not know)."""
    dp = datapath(ev)
    out = {}
    for cause, fn in (rules or ALL_RULES).items():
        if cause in VXLAN_ONLY and dp.backend != "vxlan":
            continue
        if cause in FLANNEL_ONLY and not dp.backend_covered:
            continue
        out[cause] = fn
    return out


def run_rules(ev: ClusterEvidence, rules: dict[str, Rule] | None = None) -> list[Finding]:
    """Run every rule that applies; what the rules do not cover is said once (`not-covered`, no cause);
    a rule that raises becomes a finding instead of breaking the report."""
    try:
        todo = applicable(ev, rules)
        out: list[Finding] = not_covered(ev, datapath(ev))
    except Exception as exc:  # boundary: a datapath we cannot read must not hide the rules
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        todo = rules or ALL_RULES
        out = [Finding("rule-error", f"datapath detection failed: {last}", 0.0, None, (), "", (NOTHING,))]
    for cause, fn in todo.items():
        try:
            out.extend(fn(ev))
        except Exception as exc:  # boundary: a bug in one rule must not hide the others
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            out.append(Finding("rule-error", f"rule {cause} failed: {last}", 0.0, None, (), "", (NOTHING,)))
    return out
