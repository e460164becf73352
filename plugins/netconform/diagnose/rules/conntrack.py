"""conntrack drops / insert races: random new-connection failures, 5 s DNS lookups."""

from __future__ import annotations

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._util import inspected

CAUSE = "conntrack-drops"


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
        out.append(
            Finding(
                CAUSE,
                f"{ne.node}: conntrack dropped {drop} packets, {failed} insert failures (counters since boot)",
                0.4,
                ne.node,
                tuple(f"{ne.node}$ conntrack -S: {line}" for line in lines[:4]),
                "table full: raise net.netfilter.nf_conntrack_max; insert races (5 s DNS): "
                "options single-request-reopen / NodeLocal DNSCache / newer kernel",
                (scope(checks=["stability", "dns"], nodes=[ne.node]),),
            )
        )
    return out
