"""Strict reverse-path filtering (rp_filter=1) on the overlay path drops asymmetric traffic."""

from __future__ import annotations

from ..evidence import ClusterEvidence
from ..model import Finding, risk, scope
from ._rule import Rule
from ._util import inspected, underlay

CAUSE = "rp-filter-strict"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        rp = ne.rp_filter
        if not rp:
            continue
        dev, _ = underlay(ne)
        strict = []
        for iface in ("flannel.1", "cni0", dev):
            if iface and iface in rp:
                # the kernel uses max(conf.all, conf.<iface>)
                eff = max(rp.get("all", 0), rp[iface])
                if eff == 1:
                    strict.append((iface, eff))
        if not strict:
            continue
        drops = ne.nstat.get("TcpExtIPReversePathFilter", 0)
        evidence = [f"{ne.node}$ /proc/sys/net/ipv4/conf/all/rp_filter:{rp.get('all', 0)}"]
        evidence += [f"{ne.node}$ /proc/sys/net/ipv4/conf/{i}/rp_filter:{rp[i]} (effective {e})" for i, e in strict]
        evidence.append(f"{ne.node}$ nstat: TcpExtIPReversePathFilter {drops}")
        title = f"{ne.node} uses strict reverse-path filtering on {', '.join(i for i, _ in strict)}"
        fix = (
            f"on {ne.node}: sysctl -w net.ipv4.conf.all.rp_filter=2 "
            + " ".join(f"net.ipv4.conf.{i.replace('.', '/')}.rp_filter=2" for i, _ in strict)
            + " (loose), or make routing symmetric"
        )
        if not drops:
            # the kernel counts every packet rp_filter drops: none dropped, so nothing observed is broken by it
            out.append(
                risk(
                    CAUSE,
                    title + " (no packet dropped by it so far)",
                    ne.node,
                    tuple(evidence),
                    fix,
                    "asymmetric paths (a second uplink, a route change) would be dropped",
                )
            )
            continue
        out.append(
            Finding(
                cause=CAUSE,
                title=title,
                confidence=0.8,
                node=ne.node,
                evidence=tuple(evidence),
                fix=fix,
                explains=(scope(nodes=[ne.node], cross_node=True),),
            )
        )
    return out


RULE = Rule(cause=CAUSE, category="Strict reverse-path filter drops overlay traffic", run=rule)
