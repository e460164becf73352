"""The overlay device above what its uplink carries: flannel.1 (or flannel-v6.1) MTU plus the VXLAN
encapsulation (50 bytes over IPv4, 70 over IPv6) larger than the uplink's MTU (e.g. eth0 lowered
after flanneld derived flannel.1's MTU from it). The pods match the overlay; the uplink is what is short."""

from __future__ import annotations

from netconform.checks import MTU

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._rule import FLANNEL_VXLAN, Rule
from ._util import inspected
from .mtu import VXLAN_DEVICES

CAUSE = "mtu-uplink-too-small"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        for name, overhead in VXLAN_DEVICES:
            fl = ne.links.get(name)
            dev = ne.links.get(fl.details.get("dev", "")) if fl is not None else None
            if fl is None or fl.mtu is None or dev is None or dev.mtu is None or fl.mtu <= dev.mtu - overhead:
                continue
            need, carry = fl.mtu + overhead, dev.mtu - overhead
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"{ne.node}: {dev.name} mtu {dev.mtu} cannot carry {name}'s {fl.mtu}-byte packets "
                    f"plus {overhead} bytes of VXLAN (full-size packets to and from its pods are lost)",
                    confidence=0.8,
                    node=ne.node,
                    evidence=(f"{ne.node}$ ip link: {name} mtu {fl.mtu} > {dev.name} mtu {dev.mtu} - {overhead}",),
                    fix=f"on {ne.node}: ip link set {dev.name} mtu {need} (what {name} mtu {fl.mtu} needs, if the "
                    f"network carries it); else set {name} and the pods' MTU to {carry} there "
                    "(restart flanneld: it derives both from the uplink; recreate the pods)",
                    # only packets above what the uplink carries are lost: the full-size checks through this node
                    explains=(scope(checks=[MTU], nodes=[ne.node]),),
                    detail="small requests pass; only packets above the uplink MTU minus the encapsulation are lost",
                )
            )
    return out


RULE = Rule(cause=CAUSE, applies=FLANNEL_VXLAN, category="Node uplink MTU too small for the overlay", run=rule)
