"""MTU mismatch / PMTU black hole: pod-side MTU above a VXLAN device's (flannel.1, and flannel-v6.1 on
dual-stack). The device above its uplink's MTU minus the encapsulation is rules/mtu_uplink.py's."""

from __future__ import annotations

from netconform.checks import MTU

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._rule import FLANNEL_VXLAN, Rule
from ._util import inspected

CAUSE = "mtu-mismatch"
VXLAN_OVERHEAD = 50
# flannel's VXLAN devices and what encapsulation costs on each (the IPv6 one runs over the IPv6 underlay)
VXLAN_DEVICES = (("flannel.1", VXLAN_OVERHEAD), ("flannel-v6.1", 70))


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        evidence: list[str] = []
        raise_to: list[str] = []  # an overlay device lowered below what its uplink carries: set it back
        lower_to: list[int] = []  # an overlay at what its uplink carries: the pods must come down to it
        want = ne.subnet_env.get("FLANNEL_MTU")
        ports = [link for link in ne.links.values() if link.master == "cni0"]
        # a bridge without ports reports the kernel default (1500), not what pods use: judge it only with pods
        pod_side = ports + ([ne.links["cni0"]] if ports and "cni0" in ne.links else [])
        for name, overhead in VXLAN_DEVICES:
            fl = ne.links.get(name)
            if fl is None or fl.mtu is None:
                continue
            limit, before = fl.mtu, len(evidence)
            big = [link for link in pod_side if link.mtu is not None and link.mtu > limit]
            for link in big:
                evidence.append(f"{ne.node}$ ip link show {link.name}: mtu {link.mtu} > {name} mtu {limit}")
            # pods get FLANNEL_MTU from the CNI plugin: above the device's MTU it is wrong even before a pod exists
            if want and want.isdigit() and int(want) > limit and not big:
                evidence.append(
                    f"{ne.node}$ cat /run/flannel/subnet.env: FLANNEL_MTU={want} > {name} mtu {limit} "
                    "(the MTU new pods get)"
                )
            if len(evidence) == before:
                continue  # the device above its uplink is rules/mtu_uplink.py's
            dev = ne.links.get(fl.details.get("dev", ""))
            pods = max([link.mtu for link in big if link.mtu] + ([int(want)] if want and want.isdigit() else []))
            if dev is not None and dev.mtu is not None and limit < pods <= dev.mtu - overhead:
                evidence.append(f"{ne.node}$ ip link: {dev.name} mtu {dev.mtu} - {overhead} carries {pods}")
                raise_to.append(f"ip link set {name} mtu {pods}")
            else:
                lower_to.append(limit)
        if not evidence:
            continue
        if want and not any("FLANNEL_MTU" in e for e in evidence):
            evidence.append(f"{ne.node}$ cat /run/flannel/subnet.env: FLANNEL_MTU={want}")
        fixes = list(raise_to)  # the pods are right where the device was lowered: raising it is the fix
        if lower_to:
            fixes.append(
                f"set the CNI/pod MTU to <= {min(lower_to)} (flannel writes FLANNEL_MTU; recreate pods) "
                "and allow ICMP fragmentation-needed"
            )
        fix = f"on {ne.node}: " + "; ".join(fixes)
        out.append(
            Finding(
                cause=CAUSE,
                title=f"{ne.node}: pod-side MTU larger than the overlay can carry (large transfers across nodes hang)",
                confidence=0.7,
                node=ne.node,
                evidence=tuple(evidence),
                fix=fix,
                # only packets above the overlay MTU are lost: the checks that send them (suites/test_mtu.py)
                explains=(scope(checks=[MTU], nodes=[ne.node]),),
                detail="small requests pass; only packets above the overlay MTU are lost",
            )
        )
    return out


RULE = Rule(cause=CAUSE, applies=FLANNEL_VXLAN, category="MTU mismatch between pods and the overlay", run=rule)
