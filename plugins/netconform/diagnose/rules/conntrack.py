"""conntrack drops / insert races: random new-connection failures, 5 s DNS lookups.

insert_failed counts connections whose conntrack entry lost a race at insert: on a node that
masquerades, two connections SNATed to the same source port at once (docs/faults.md #18; issue 9: a lone
lost connection among many). The cure for the SNAT race is fully random source ports
(`--random-fully` on MASQUERADE, `masquerade fully-random` in nft), so the rule quotes the node's
masquerade rules that lack it.

The counters are since boot: a node that once lost one race says so for ever. They are a cause only beside
the failures of a run (whose checks they may explain); --diagnose-only makes no connection, so there they
are a risk, said but failing nothing (a CI run's healthy --diagnose-only met insert_failed=1 on a Cilium node).
"""

from __future__ import annotations

from netconform.checks import DNS, STABILITY

from ..evidence import ClusterEvidence, NodeEvidence
from ..iptables import rules_in
from ..model import Finding, risk, scope
from ._rule import Rule
from ._util import inspected, quote_rule

CAUSE = "conntrack-drops"


def _masquerade_without_random_fully(ne: NodeEvidence) -> list[str]:
    out = []
    if ne.has("iptables"):
        for r in rules_in(ne.tables, "nat"):
            if r.target == "MASQUERADE" and "--random-fully" not in r.args:
                out.append(f"{ne.node}$ iptables-save -t nat: {quote_rule(r)}")
    if ne.has("nft"):
        for fam, t in sorted(ne.nft.kube_proxy.items()):
            for chain, exprs in sorted(t.chains.items()):
                for x in exprs:
                    for e in x.get("expr", []):
                        if isinstance(e, dict) and "masquerade" in e:
                            flags = (
                                (e["masquerade"] or {}).get("flags", []) if isinstance(e["masquerade"], dict) else []
                            )
                            if "fully-random" not in (flags if isinstance(flags, list) else [flags]):
                                out.append(f"{ne.node}$ nft list table {fam} kube-proxy: chain {chain}: masquerade")
    return out


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        st = ne.conntrack
        drop, failed = st.get("drop", 0), st.get("insert_failed", 0)
        if not drop and not failed:
            continue
        lines = [
            line.strip()
            for line in ne.text("conntrack").splitlines()
            if any(f"{k}=" in line and f"{k}=0 " not in line + " " for k in ("drop", "insert_failed"))
        ]
        evidence = [f"{ne.node}$ conntrack -S: {line}" for line in lines[:4]]
        fix = (
            "table full: raise net.netfilter.nf_conntrack_max; insert races (5 s DNS): "
            "options single-request-reopen / NodeLocal DNSCache / newer kernel"
        )
        plain = _masquerade_without_random_fully(ne) if failed else []
        if plain:
            evidence += plain[:4]
            fix = (
                f"on {ne.node}: masquerade with fully random source ports: add --random-fully to the MASQUERADE "
                "rules quoted (flanneld and kube-proxy do it themselves when iptables supports it: upgrade "
                "iptables/flanneld), so concurrent SNATed connections stop colliding; " + fix
            )
        title = f"{ne.node}: conntrack dropped {drop} packets, {failed} insert failures (counters since boot)" + (
            " on a node that masquerades without --random-fully" if plain else ""
        )
        detail = (
            "a lone lost connection among many (a SYN whose conntrack entry lost the insert race)" if failed else ""
        )
        if ev.health_only:
            out.append(
                risk(
                    CAUSE,
                    title + " (no connection of this run to blame them for)",
                    ne.node,
                    tuple(evidence),
                    fix,
                    detail,
                )
            )
            continue
        out.append(
            Finding(
                cause=CAUSE,
                title=title,
                confidence=0.5 if plain else 0.4,
                node=ne.node,
                evidence=tuple(evidence),
                fix=fix,
                explains=(scope(checks=[STABILITY, DNS], nodes=[ne.node]),),
                detail=detail,
            )
        )
    return out


RULE = Rule(cause=CAUSE, category="conntrack table full or insert failures", run=rule)
