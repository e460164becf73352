"""ClusterFacts as plain data and back: what --diagnose-record saves (facts.json) and the unit tests replay,
in the shape of tests/data/recorded/facts.json."""

from __future__ import annotations

import json
from typing import Any

from netconform.kube.inventory import FLANNEL_BACKEND_DATA, FLANNEL_PUBLIC_IP, NodeInfo

from .facts import (
    FLANNEL_BACKEND_TYPE,
    FLANNEL_BACKEND_V6_DATA,
    ClusterFacts,
    Endpoint,
    NodeFacts,
    PodFacts,
    ServiceFacts,
    ServicePort,
)

__all__ = ["facts_from_dict", "facts_to_dict"]


def facts_from_dict(data: dict[str, Any]) -> ClusterFacts:
    """ClusterFacts from plain data (tests, saved evidence); the shape of tests/data/recorded/facts.json."""
    facts = ClusterFacts()
    for n in data.get("nodes", []):
        node = NodeInfo(
            name=n["name"],
            internal_ip=n.get("internal_ip") or "",
            pod_cidrs=tuple(n.get("pod_cidrs", ())),
            ready=n.get("ready", True),
            schedulable=True,
            annotations=dict(n.get("annotations", {})),
            internal_ips=tuple(n.get("internal_ips", ())),
        )
        facts.nodes[node.name] = NodeFacts.from_node(node)
    for s in data.get("services", []):
        sf = ServiceFacts(
            s["namespace"],
            s["name"],
            s.get("cluster_ip"),
            s.get("type", "ClusterIP"),
            tuple(
                ServicePort(p.get("name", ""), p["port"], p.get("protocol", "TCP"), p.get("node_port"))
                for p in s.get("ports", [])
            ),
            tuple(
                Endpoint(e["ip"], e.get("node"), e.get("ready", True), e.get("pod", "")) for e in s.get("endpoints", [])
            ),
            s.get("external_traffic_policy", "Cluster"),
            s.get("internal_traffic_policy", "Cluster"),
            tuple(s.get("cluster_ips", ())),
        )
        facts.services[sf.key] = sf
    facts.probe_services = tuple(data.get("probe_services", ()))
    for key in ("coredns", "kube_proxy"):
        setattr(
            facts,
            key,
            [
                PodFacts(
                    p["namespace"],
                    p["name"],
                    p.get("node"),
                    p.get("phase", "Running"),
                    p.get("ready", True),
                    p.get("restarts", 0),
                    p.get("reason", ""),
                    p.get("ip"),
                )
                for p in data.get(key, [])
            ],
        )
    facts.cluster_cidr = data.get("cluster_cidr")
    facts.proxy_mode = data.get("proxy_mode")
    facts.sandbox_failures = {str(k): str(v) for k, v in (data.get("sandbox_failures") or {}).items()}
    facts.corefile = data.get("corefile")
    facts.dns_expect = {k: tuple(v) for k, v in data.get("dns_expect", {}).items()}
    return facts


def facts_to_dict(facts: ClusterFacts) -> dict[str, Any]:
    """The inverse of facts_from_dict (saved by --diagnose-record, replayed by unit tests)."""

    def pods(ps: list[PodFacts]) -> list[dict[str, Any]]:
        return [
            {
                "namespace": p.namespace,
                "name": p.name,
                "node": p.node,
                "phase": p.phase,
                "ready": p.ready,
                "restarts": p.restarts,
                "reason": p.reason,
                "ip": p.ip,
            }
            for p in ps
        ]

    return {
        "nodes": [
            {
                "name": n.name,
                "internal_ip": n.internal_ip,
                "internal_ips": [ip for ip in (n.internal_ip, n.internal_ip_v6) if ip],
                "pod_cidrs": list(n.pod_cidrs),
                "ready": n.ready,
                "annotations": {
                    k: v
                    for k, v in (
                        (FLANNEL_BACKEND_DATA, n.backend_data),
                        (FLANNEL_PUBLIC_IP, n.public_ip),
                        (FLANNEL_BACKEND_TYPE, n.backend_type),
                        (FLANNEL_BACKEND_V6_DATA, json.dumps({"VtepMAC": n.vtep_mac_v6}) if n.vtep_mac_v6 else None),
                    )
                    if v
                },
            }
            for n in facts.nodes.values()
        ],
        "services": [
            {
                "namespace": s.namespace,
                "name": s.name,
                "cluster_ip": s.cluster_ip,
                "type": s.type,
                "ports": [
                    {"name": p.name, "port": p.port, "protocol": p.protocol, "node_port": p.node_port} for p in s.ports
                ],
                "endpoints": [{"ip": e.ip, "node": e.node, "ready": e.ready, "pod": e.pod} for e in s.endpoints],
                "external_traffic_policy": s.external_traffic_policy,
                "internal_traffic_policy": s.internal_traffic_policy,
                "cluster_ips": list(s.cluster_ips),
            }
            for s in facts.services.values()
        ],
        "probe_services": list(facts.probe_services),
        "coredns": pods(facts.coredns),
        "kube_proxy": pods(facts.kube_proxy),
        "cluster_cidr": facts.cluster_cidr,
        "proxy_mode": facts.proxy_mode,
        "sandbox_failures": dict(facts.sandbox_failures),
        "corefile": facts.corefile,
        "dns_expect": {k: list(v) for k, v in facts.dns_expect.items()},
    }
