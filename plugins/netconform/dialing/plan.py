"""What every client pod dials, per check and per IP family: one list of targets per client, built once per run.

Target ids are made here and only here (`pod_target`, `nodeport_target`, ...); a test asks its
client pod's results for the id of the path it checks. Every id names its IP family ("ipv4" |
"ipv6"). A path the plan cannot dial (a server pod without an IPv6 address, a Service the cluster
gave no IPv6 ClusterIP, a node without an IPv6 InternalIP) is a `Gap` under the same id: the test
asking for it fails or skips with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from netconform.checks import DNS, HAIRPIN, MTU, NETWORK_POLICY, NODEPORT, POD_TO_POD, SERVICE, STABILITY
from netconform.dialing import coverage
from netconform.dialing.model import STOP_AFTER_FAILURES, Source, Target
from netconform.dialing.pairs import PairChoice
from netconform.kube.inventory import NodeInfo, cluster_families
from netconform.workload.deploy import Deployment
from netconform.workload.labels import HAIRPIN_SERVICE, HTTP_PORT, POLICY, SERVICES, UDP_PORT

__all__ = [
    "DNS_KINDS",
    "IP_OVERHEAD",
    "MTU_TRIES",
    "Gap",
    "build_plan",
    "dns_names",
    "dns_target",
    "hairpin_target",
    "mtu_payload",
    "mtu_target",
    "network_policy_plan",
    "network_policy_target",
    "nodeport_target",
    "plan_with_gaps",
    "pod_target",
    "service_coverage_target",
    "service_target",
    "single_nodeport_target",
    "stability_peer",
    "stability_target",
]

Proto = Literal["tcp", "udp"]
DNS_KINDS = {
    "short": "short name",
    "namespaced": "namespaced name",
    "fqdn": "FQDN",
    "headless": "headless Service",
    "kubernetes": "API Service",
}
# IP + UDP header bytes: a datagram of MTU - overhead payload bytes fills a packet of exactly MTU
IP_OVERHEAD = {"ipv4": 28, "ipv6": 48}
# Full-size DF datagrams per pod-to-pod path, stopping at the first that comes back whole. A path
# that carries the size fails only if all are lost by chance: p**3 for a loss rate p (1e-9 at p=1e-3);
# one whose MTU is too small loses every one of them.
MTU_TRIES = 3
PROBE_FAMILY = {"ipv4": "4", "ipv6": "6"}


def pod_target(proto: Proto, dst_node: str, family: str = "ipv4") -> str:
    """The server pod on `dst_node`, by its pod IP of `family`."""
    return f"pod:{proto}:{family}:{dst_node}"


def nodeport_target(dst_node: str, *, local: bool = False, family: str = "ipv4") -> str:
    """`dst_node`'s InternalIP of `family` at the NodePort (externalTrafficPolicy Cluster, or Local)."""
    return f"{'np-local' if local else 'np-cluster'}:{family}:{dst_node}"


def single_nodeport_target(dst_node: str, family: str = "ipv4") -> str:
    """`dst_node`'s InternalIP at the eTP=Local NodePort whose only backend is on the first node (host dials)."""
    return f"np-single:{family}:{dst_node}"


def service_target(proto: Proto, family: str = "ipv4") -> str:
    """The ClusterIP Service, many fresh connections (every backend must answer)."""
    return f"svc:{proto}:{family}"


def service_coverage_target(
    target_id: str, proto: Proto, host: str, port: int, backends: int, tries: int, label: str
) -> Target:
    """The Service check's dial: fresh connections to `host` until `backends` distinct servers answered, at
    most `tries` (coverage.backend_tries), stopping early after a few failures. Judged by
    coverage.backend_verdict."""
    return Target(
        target_id,
        proto,
        host,
        port,
        SERVICE,
        count=tries,
        dst_label=label,
        max_failures=STOP_AFTER_FAILURES,
        want_backends=backends,
    )


def stability_target(via: Literal["nodeport", "clusterip"], family: str = "ipv4") -> str:
    """--stability-count consecutive connections to the ring peer's NodePort, or to the ClusterIP."""
    return f"stability:{via}:{family}"


def dns_target(kind: str, family: str = "ipv4") -> str:
    """A lookup of the name of `kind`, asking only for A (ipv4) or AAAA (ipv6) records."""
    return f"dns:{kind}:{family}"


def mtu_target(family: str, dst_node: str | None = None) -> str:
    """A UDP datagram that fills the pod MTU, DF set: to the server pod on `dst_node`, or (None) through
    the ClusterIP to every backend."""
    return f"mtu:{family}:{dst_node}" if dst_node else f"mtu:{family}:clusterip"


def hairpin_target(family: str = "ipv4") -> str:
    """The client pod's own Service (nc-hairpin, internalTrafficPolicy Local): answered by itself."""
    return f"hairpin:{family}"


def network_policy_target(proto: Proto, dst_node: str, family: str = "ipv4") -> str:
    """The NetworkPolicy check's target pod on `dst_node` (nc-policy-target), by its pod IP of `family`."""
    return f"netpol:{proto}:{family}:{dst_node}"


def mtu_payload(mtu: int, family: str) -> int:
    """UDP payload bytes that make a packet of exactly `mtu` bytes."""
    return mtu - IP_OVERHEAD[family]


def dns_names(namespace: str, domain: str) -> dict[str, str]:
    server = SERVICES["clusterip"]
    return {
        "short": server,
        "namespaced": f"{server}.{namespace}",
        "fqdn": f"{server}.{namespace}.svc.{domain}",
        "headless": f"{SERVICES['headless']}.{namespace}.svc.{domain}",
        "kubernetes": "kubernetes.default",
    }


def stability_peer(nodes: list[NodeInfo], src: NodeInfo) -> NodeInfo:
    """The next node by name (a ring): every node's NodePort is hammered by exactly one other node, cost O(N)."""
    names = [n.name for n in nodes]
    return nodes[(names.index(src.name) + 1) % len(nodes)]


@dataclass(frozen=True)
class Gap:
    """A path the plan could not dial: `fail` = the cluster is wrong (a pod without an address of a family
    its node's podCIDRs have); else the cluster simply has no such path (skip)."""

    reason: str
    fail: bool = False
    node: str = ""  # the node whose probe pods never became Ready, when that is why (diagnosed there)


Plan = dict[Source, list[Target]]
Gaps = dict[tuple[str, str], Gap]  # (source node, target id) -> why it was not dialed


class _Builder:
    """Collects one client's targets, and the gaps where an address of the family is missing."""

    def __init__(self, node: str, gaps: Gaps) -> None:
        self.node, self.gaps = node, gaps
        self.targets: list[Target] = []

    def add(self, target_id: str, host: str | None, gap: Gap, make: Target | None = None) -> None:
        if host and make is not None:
            self.targets.append(make)
        else:
            self.gaps[(self.node, target_id)] = gap


def _no_pod_ip(role: str, pod: str, node: str, family: str) -> Gap:
    return Gap(
        f"{pod} ({role} pod on {node}) has no {_name(family)} address, though the nodes' podCIDRs have one", True
    )


def _no_pod(dep: Deployment, role: str, pod: str | None, node: str, family: str) -> Gap:
    """Why a destination pod cannot be dialed: it has no address of the family, or it never started."""
    if pod:
        return _no_pod_ip(role, pod, node, family)
    why = dep.unusable.get(node, f"no {role} pod")
    return Gap(f"the probe pods on {node} never became Ready: {why}", True, node)


def _no_service_ip(service: str, family: str) -> Gap:
    return Gap(f"Service {service} got no {_name(family)} ClusterIP (ipFamilyPolicy PreferDualStack): the cluster "
               f"has no {_name(family)} Service range, so there is no {_name(family)} Service path to check")  # fmt: skip


def _no_node_ip(node: str, family: str) -> Gap:
    return Gap(f"{node} has no {_name(family)} InternalIP: its NodePort has no {_name(family)} address to dial")


def _name(family: str) -> str:
    return {"ipv4": "IPv4", "ipv6": "IPv6"}.get(family, family)


def _pair_targets(b: _Builder, dep: Deployment, dst: NodeInfo, family: str, cross: bool) -> None:
    server = dep.servers.get(dst.name)
    ip = server.ip_of(family) if server else None
    missing = _no_pod(dep, "server", server.name if server else None, dst.name, family)
    for proto, port in (("tcp", HTTP_PORT), ("udp", UDP_PORT)):
        tid = pod_target(proto, dst.name, family)  # type: ignore[arg-type]
        b.add(tid, ip, missing, Target(tid, proto, ip or "", port, POD_TO_POD, dst_node=dst.name))
    if cross and dep.pod_mtu:
        tid = mtu_target(family, dst.name)
        payload = mtu_payload(dep.pod_mtu, family)
        b.add(
            tid,
            ip,
            missing,
            Target(tid, "udp", ip or "", UDP_PORT, MTU, count=MTU_TRIES, dst_node=dst.name, want_backends=1,
                   payload_bytes=payload, df=True),
        )  # fmt: skip
    node_ip = dst.ip_of(family) if server else None  # no local backend: the NodePort paths say the same
    for local, port in ((False, dep.node_port), (True, dep.node_port_local)):
        tid = nodeport_target(dst.name, local=local, family=family)
        label = f"NodePort {'eTP=Local ' if local else ''}of {dst.name}"
        b.add(
            tid,
            node_ip,
            _no_node_ip(dst.name, family) if server else missing,
            Target(tid, "tcp", node_ip or "", port, NODEPORT, dst_node=dst.name, dst_label=label),
        )


def _network_policy(b: _Builder, dep: Deployment, dst: NodeInfo, family: str) -> None:
    """The policy target on `dst`, TCP and UDP, one connection each: in the fan-out (before any policy:
    the path works) and in every round of the NetworkPolicy check (`network_policy_plan`)."""
    target = dep.policy_targets.get(dst.name)
    ip = target.ip_of(family) if target else None
    missing = _no_pod(dep, "policy target", target.name if target else None, dst.name, family)
    label = f"{POLICY['target_daemonset']} on {dst.name}"
    for proto, port in (("tcp", HTTP_PORT), ("udp", UDP_PORT)):
        tid = network_policy_target(proto, dst.name, family)  # type: ignore[arg-type]
        b.add(tid, ip, missing, Target(tid, proto, ip or "", port, NETWORK_POLICY, dst_node=dst.name, dst_label=label))


def network_policy_plan(dep: Deployment, nodes: list[NodeInfo], pairs: PairChoice | None = None) -> Plan:
    """What one round of the NetworkPolicy check dials, one exec per pod: every client pod its own
    node's policy target and those of its chosen cross-node peers (the same ids as in the fan-out,
    where they were dialed before any policy existed), and the allowed client (nc-policy-client, on
    the first node) every node's, so each target is seen alive under the policy. Gaps are the fan-out's."""
    families = cluster_families(nodes)
    plan: Plan = {}
    unused: Gaps = {}
    for node in nodes:
        client = dep.clients.get(node.name)
        if client is None:
            continue
        b = _Builder(node.name, unused)
        for family in families:
            if client.ip_of(family):
                for dst in nodes:
                    if pairs is None or pairs.covers(node.name, dst.name):
                        _network_policy(b, dep, dst, family)
        plan[Source(client.name, client.ip, node.name)] = b.targets
    allowed = dep.policy_client
    if allowed is not None:
        b = _Builder(allowed.node, unused)
        for family in families:
            if allowed.ip_of(family):
                for dst in nodes:
                    _network_policy(b, dep, dst, family)
        plan[Source(allowed.name, allowed.ip, allowed.node)] = b.targets
    return plan


def _many_targets(
    b: _Builder, dep: Deployment, peer: NodeInfo, family: str, backend_tries: int, stability_count: int
) -> None:
    clusterip = f"ClusterIP {SERVICES['clusterip']}"
    ip = dep.service_ip(family)
    no_ip = _no_service_ip(SERVICES["clusterip"], family)

    def many(
        tid: str,
        proto: str,
        host: str | None,
        port: int,
        check: str,
        count: int,
        *,
        want: int = 0,
        payload: int = 0,
        dst_node: str | None = None,
        label: str = clusterip,
        gap: Gap = no_ip,
    ) -> None:
        target = Target(
            tid,
            proto,
            host or "",
            port,
            check,
            count=count,
            dst_node=dst_node,
            dst_label=label,
            max_failures=STOP_AFTER_FAILURES,
            want_backends=want,
            payload_bytes=payload,
            df=payload > 0,
        )
        b.add(tid, host, gap, target)

    backends, stab = len(dep.servers), stability_count
    service_ports: tuple[tuple[Proto, int], ...] = (("tcp", HTTP_PORT), ("udp", UDP_PORT))
    for proto, port in service_ports:
        tid = service_target(proto, family)
        target = service_coverage_target(tid, proto, ip or "", port, backends, backend_tries, clusterip)
        b.add(tid, ip, no_ip, target)
    if dep.pod_mtu:
        payload = mtu_payload(dep.pod_mtu, family)
        many(mtu_target(family), "udp", ip, UDP_PORT, MTU, backend_tries, want=backends, payload=payload)
    many(
        stability_target("nodeport", family),
        "tcp",
        peer.ip_of(family),
        dep.node_port,
        STABILITY,
        stab,
        dst_node=peer.name,
        label=f"NodePort of {peer.name}",
        gap=_no_node_ip(peer.name, family),
    )
    many(stability_target("clusterip", family), "tcp", ip, HTTP_PORT, STABILITY, stab)


def _hairpin(b: _Builder, dep: Deployment, family: str) -> None:
    tid = hairpin_target(family)
    ip = dep.hairpin_ips.get(family)
    label = f"ClusterIP {HAIRPIN_SERVICE}, internalTrafficPolicy Local: this pod itself"
    b.add(
        tid,
        ip,
        _no_service_ip(HAIRPIN_SERVICE, family),
        Target(tid, "tcp", ip or "", HTTP_PORT, HAIRPIN, dst_node=b.node, dst_label=label),
    )


# Lookups per name, each bounded by --dial-timeout: a lookup nobody answered is tried again, as the pod's
# resolver does (resolv.conf attempts); an answer ends it. One lost datagram must not fail a DNS check:
# under load on the 12-node lab one query in ~1,000 went unanswered (i/o timeout). Three unanswered in a
# row is no chance loss; a retry that answered is said in the run's summary (docs/faults.md #18 when it recurs).
DNS_LOOKUPS = 3


def _dns(b: _Builder, dep: Deployment, family: str) -> None:
    names = dns_names(dep.namespace, dep.cluster_domain)
    for kind, label in DNS_KINDS.items():
        tid = dns_target(kind, family)
        b.targets.append(  # the probe's protocol "dns" (a lookup), for the check DNS
            Target(tid, "dns", names[kind], 0, DNS, count=DNS_LOOKUPS, dst_label=label, family=PROBE_FAMILY[family])
        )


def plan_with_gaps(
    dep: Deployment, nodes: list[NodeInfo], stability_count: int, pairs: PairChoice | None = None
) -> tuple[Plan, Gaps]:
    """Every target of every check over every IP family of the cluster, per client pod (one exec each),
    and the paths that could not be planned. Deterministic: nodes in name order, families ipv4 first.
    `pairs` limits the cross-node destinations (default: all of them)."""
    families = cluster_families(nodes)
    # dial until every backend answered, at most this often (the arithmetic: netconform.dialing.coverage):
    # per source and family the TCP and UDP Service checks, and the full-size datagrams through it
    checks = (3 if dep.pod_mtu else 2) * len(nodes) * len(families)
    backend_tries = coverage.backend_tries(len(dep.servers), checks=checks)
    plan: Plan = {}
    gaps: Gaps = {}
    for node in nodes:
        client = dep.clients.get(node.name)
        if client is None:  # its probe pods never became Ready: the src fixture fails its tests with why
            continue
        b = _Builder(node.name, gaps)
        for family in families:
            if not client.ip_of(family):
                gap = _no_pod_ip("client", client.name, node.name, family)
                before = len(b.targets)
                _family_targets(b, dep, nodes, node, family, pairs, backend_tries, stability_count)
                for t in b.targets[before:]:
                    gaps[(node.name, t.id)] = gap
                del b.targets[before:]
                continue
            _family_targets(b, dep, nodes, node, family, pairs, backend_tries, stability_count)
        plan[Source(client.name, client.ip, node.name)] = b.targets
    return plan, gaps


def _family_targets(
    b: _Builder,
    dep: Deployment,
    nodes: list[NodeInfo],
    node: NodeInfo,
    family: str,
    pairs: PairChoice | None,
    backend_tries: int,
    stability_count: int,
) -> None:
    for dst in nodes:
        if pairs is None or pairs.covers(node.name, dst.name):
            _pair_targets(b, dep, dst, family, cross=dst.name != node.name)
            if dep.network_policy:
                _network_policy(b, dep, dst, family)
    ring = [n for n in nodes if n.name in dep.servers or n.name == node.name]
    _many_targets(b, dep, stability_peer(ring, node), family, backend_tries, stability_count)
    _hairpin(b, dep, family)
    _dns(b, dep, family)


def build_plan(dep: Deployment, nodes: list[NodeInfo], stability_count: int, pairs: PairChoice | None = None) -> Plan:
    """`plan_with_gaps` without the gaps."""
    return plan_with_gaps(dep, nodes, stability_count, pairs)[0]
