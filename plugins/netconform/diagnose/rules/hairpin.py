"""Hairpin off on cni0 ports: a pod reaching its own Service fails when balanced to itself."""

from __future__ import annotations

from netconform.checks import HAIRPIN, NODEPORT, SERVICE

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._rule import Rule
from ._util import inspected

CAUSE = "hairpin-off"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        off = sorted(
            p
            for p, v in ne.hairpin.items()
            if v == 0 and (ne.links.get(p) is None or ne.links[p].master in (None, "cni0"))
        )
        if not off:
            continue
        evidence = [f"{ne.node}$ /sys/class/net/{p}/brport/hairpin_mode:0" for p in off[:5]]
        if len(off) > 5:
            evidence.append(f"... and {len(off) - 5} more ports")
        cni = ne.text("cni_conf")
        if cni and '"hairpinMode": true' not in cni.replace("'", '"') and '"hairpinMode":true' not in cni:
            evidence.append(f'{ne.node}$ cat /etc/cni/net.d/*: no "hairpinMode": true')
        out.append(
            Finding(
                cause=CAUSE,
                title=f"{ne.node}: hairpin off on {len(off)} cni0 port(s)",
                confidence=0.6,
                node=ne.node,
                evidence=tuple(evidence),
                fix=f'set "hairpinMode": true in the CNI config (flannel\'s delegate) and recreate the pods; '
                f"now: for p in {' '.join(off[:5])}; do ip link set $p type bridge_slave hairpin on; done (on {ne.node})",
                explains=(scope(checks=[SERVICE, NODEPORT, HAIRPIN], src_nodes=[ne.node], dst_nodes=[ne.node]),),
                detail="only a pod dialing a Service that load-balances back to the same pod is affected",
            )
        )
    return out


RULE = Rule(cause=CAUSE, category="Hairpin mode off (pod cannot reach itself via its Service)", run=rule)
