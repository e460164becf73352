"""What every client pod dials, per check: one list of targets per client, built once per run.

Target ids are made here and only here (`pod_target`, `nodeport_target`, ...); a test asks its
client pod's results for the id of the path it checks.
"""

from __future__ import annotations

from typing import Literal

from netconform.dialing import coverage
from netconform.dialing.model import STOP_AFTER_FAILURES, Source, Target
from netconform.dialing.pairs import PairChoice
from netconform.kube.inventory import NodeInfo
from netconform.workload.deploy import Deployment
from netconform.workload.labels import HTTP_PORT, SERVICES, UDP_PORT

__all__ = [
    "DNS_KINDS",
    "build_plan",
    "dns_names",
    "dns_target",
    "nodeport_target",
    "pod_target",
    "service_target",
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


def pod_target(proto: Proto, dst_node: str) -> str:
    """The server pod on `dst_node`, by pod IP."""
    return f"pod:{proto}:{dst_node}"


def nodeport_target(dst_node: str, *, local: bool = False) -> str:
    """`dst_node`'s InternalIP at the NodePort (externalTrafficPolicy Cluster, or Local)."""
    return f"{'np-local' if local else 'np-cluster'}:{dst_node}"


def service_target(proto: Proto) -> str:
    """The ClusterIP Service, many fresh connections (every backend must answer)."""
    return f"svc:{proto}"


def stability_target(via: Literal["nodeport", "clusterip"]) -> str:
    """--stability-count consecutive connections to the ring peer's NodePort, or to the ClusterIP."""
    return f"stability:{via}"


def dns_target(kind: str) -> str:
    return f"dns:{kind}"


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


def _pair_targets(dep: Deployment, dst: NodeInfo) -> list[Target]:
    server = dep.servers[dst.name]
    return [
        Target(pod_target("tcp", dst.name), "tcp", server.ip, HTTP_PORT, "pod_to_pod", dst_node=dst.name),
        Target(pod_target("udp", dst.name), "udp", server.ip, UDP_PORT, "pod_to_pod", dst_node=dst.name),
        Target(
            nodeport_target(dst.name),
            "tcp",
            dst.internal_ip,
            dep.node_port,
            "nodeport",
            dst_node=dst.name,
            dst_label=f"NodePort of {dst.name}",
        ),
        Target(
            nodeport_target(dst.name, local=True),
            "tcp",
            dst.internal_ip,
            dep.node_port_local,
            "nodeport",
            dst_node=dst.name,
            dst_label=f"NodePort eTP=Local of {dst.name}",
        ),
    ]


def _many_targets(dep: Deployment, peer: NodeInfo, backend_tries: int, stability_count: int) -> list[Target]:
    clusterip = f"ClusterIP {SERVICES['clusterip']}"

    def many(
        target_id: str, proto: str, host: str, port: int, check: str, count: int, want: int = 0, **where: str
    ) -> Target:
        label = where.get("dst_label", clusterip)
        return Target(
            target_id,
            proto,
            host,
            port,
            check,
            count=count,
            dst_node=where.get("dst_node"),
            dst_label=label,
            max_failures=STOP_AFTER_FAILURES,
            want_backends=want,
        )

    ip, stab = dep.cluster_ip, stability_count
    return [
        many(service_target("tcp"), "tcp", ip, HTTP_PORT, "service", backend_tries, want=len(dep.servers)),
        many(service_target("udp"), "udp", ip, UDP_PORT, "service", backend_tries, want=len(dep.servers)),
        many(
            stability_target("nodeport"),
            "tcp",
            peer.internal_ip,
            dep.node_port,
            "stability",
            stab,
            dst_node=peer.name,
            dst_label=f"NodePort of {peer.name}",
        ),
        many(stability_target("clusterip"), "tcp", ip, HTTP_PORT, "stability", stab),
    ]


def build_plan(
    dep: Deployment, nodes: list[NodeInfo], stability_count: int, pairs: PairChoice | None = None
) -> dict[Source, list[Target]]:
    """Every target of every check, per client pod (one exec each). Deterministic: nodes in name order.
    `pairs` limits the cross-node destinations (default: all of them)."""
    # dial until every backend answered, at most this often (the arithmetic: netconform.dialing.coverage)
    backend_tries = coverage.backend_tries(len(dep.servers), checks=2 * len(nodes))
    plan: dict[Source, list[Target]] = {}
    for node in nodes:
        client = dep.clients[node.name]
        targets = [
            t for dst in nodes if pairs is None or pairs.covers(node.name, dst.name) for t in _pair_targets(dep, dst)
        ]
        targets += _many_targets(dep, stability_peer(nodes, node), backend_tries, stability_count)
        names = dns_names(dep.namespace, dep.cluster_domain)
        targets += [
            Target(dns_target(kind), "dns", names[kind], 0, "dns", dst_label=label) for kind, label in DNS_KINDS.items()
        ]
        plan[Source(client.name, client.ip, node.name)] = targets
    return plan
