"""A pod's own node does not deliver to it: `ip route get <podIP>` on that node does not end at a
local interface that is up (the seed's Calico step: the host side of a pod is whatever the route names,
cni0 for flannel's bridge, cali*/lxc* for others)."""

from __future__ import annotations

import ipaddress

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._rule import Rule
from ._util import inspected

CAUSE = "pod-route-wrong"


def _mine(ip: str, cidrs: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
        return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)
    except ValueError:
        return False


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, nf in inspected(ev):
        if nf is None or not ne.has("route_get") or not ne.has("link"):
            continue
        for ip, r in sorted(ne.route_get.items()):
            # only pods inside this node's own podCIDRs: an endpoint elsewhere is routed away on purpose
            if not _mine(ip, nf.pod_cidrs):
                continue
            link = ne.links.get(r.dev or "")
            if r.via is None and link is not None and link.up:
                continue
            if r.dev is None:
                problem = f"has no route to its own pod {ip}"
            elif r.via is not None:
                problem = f"the route to its own pod {ip} leaves through {r.dev} via {r.via}"
            elif link is None:
                problem = f"the route to its own pod {ip} names {r.dev}, which does not exist"
            else:
                problem = f"the pod {ip}'s host-side interface {r.dev} is down"
            evidence = [f"{ne.node}$ ip route get {ip}: {r.raw}"]
            if link is not None:
                evidence.append(f"{ne.node}$ ip -d link show {link.name}: {link.raw[0]}")
            evidence.append(f"{ne.node} spec.podCIDRs: {', '.join(nf.pod_cidrs)}")
            fix = (
                f"on {ne.node}: ip link set {r.dev} up"
                if link is not None and r.via is None
                else f"on {ne.node}: restart the CNI's agent (flanneld) so it re-adds the route to its podCIDR "
                f"({', '.join(nf.pod_cidrs)})"
                if r.dev is None
                else f"on {ne.node}: find the route that captures {ip} (ip route show table all | grep ...) "
                "and remove it; the CNI's route to the pod's host-side interface must win"
            )
            out.append(
                Finding(
                    cause=CAUSE,
                    title=f"{ne.node}: {problem}",
                    confidence=0.85,
                    node=ne.node,
                    evidence=tuple(evidence),
                    fix=fix,
                    explains=(scope(dst_nodes=[ne.node]),),
                )
            )
    return out


RULE = Rule(cause=CAUSE, category="a node does not deliver to its own pod", run=rule)
