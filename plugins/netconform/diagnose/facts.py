"""Cluster facts the rules read from the API: nodes (flannel annotations), the suite's Services and
their endpoints, CoreDNS and kube-proxy pods; and their plain-data form (--diagnose-record, unit tests).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from netconform.kube.inventory import FLANNEL_BACKEND_DATA, NodeInfo, list_nodes

from .sandbox import sandbox_failures

FLANNEL_BACKEND_TYPE = "flannel.alpha.coreos.com/backend-type"
FLANNEL_BACKEND_V6_DATA = "flannel.alpha.coreos.com/backend-v6-data"


def _vtep_mac(raw: str | None) -> str | None:
    try:
        mac = json.loads(raw).get("VtepMAC") if raw else None
    except (ValueError, AttributeError, RecursionError):  # an annotation anyone with node patch can write
        return None
    return str(mac).lower() if mac else None


__all__ = [
    "ClusterFacts",
    "Endpoint",
    "NodeFacts",
    "PodFacts",
    "ServiceFacts",
    "ServicePort",
    "FLANNEL_BACKEND_TYPE",
    "FLANNEL_BACKEND_V6_DATA",
    "facts_from_api",
]


@dataclass(frozen=True)
class NodeFacts:
    name: str
    internal_ip: str | None
    pod_cidrs: tuple[str, ...]
    vtep_mac: str | None
    public_ip: str | None
    ready: bool = True
    backend_data: str = ""  # the annotation verbatim (quoted as evidence)
    backend_type: str | None = None  # flannel.alpha.coreos.com/backend-type: vxlan, host-gw, ...
    pod_cidrs_v6: tuple[str, ...] = ()  # the IPv6 podCIDRs (also in pod_cidrs)
    internal_ip_v6: str | None = None
    vtep_mac_v6: str | None = None  # flannel-v6.1's MAC (backend-v6-data VtepMAC), dual-stack vxlan

    @classmethod
    def from_node(cls, node: NodeInfo) -> NodeFacts:
        """What the rules need of a node; node parsing (addresses, CIDRs, annotations) is kube.inventory's."""
        mac = node.flannel_vtep_mac
        return cls(
            node.name,
            node.internal_ip or None,
            tuple(node.pod_cidrs),
            mac.lower() if mac else None,
            node.flannel_public_ip,
            node.ready,
            node.annotations.get(FLANNEL_BACKEND_DATA, ""),
            node.annotations.get(FLANNEL_BACKEND_TYPE) or None,
            tuple(c for c in node.pod_cidrs if ":" in c),
            node.ip_of("ipv6"),
            _vtep_mac(node.annotations.get(FLANNEL_BACKEND_V6_DATA)),
        )

    @property
    def subnet_gw(self) -> str | None:
        """flannel's per-node overlay address: the `.0` of the podCIDR."""
        for c in self.pod_cidrs:
            net = ipaddress.ip_network(c, strict=False)
            if net.version == 4:
                return str(net.network_address)
        return None

    @property
    def subnet_gw_v6(self) -> str | None:
        """flannel-v6.1's address on a dual-stack vxlan node: the first address of the IPv6 podCIDR."""
        for c in self.pod_cidrs_v6:
            return str(ipaddress.ip_network(c, strict=False).network_address)
        return None

    @property
    def pod_cidr(self) -> str | None:
        for c in self.pod_cidrs:
            if ipaddress.ip_network(c, strict=False).version == 4:
                return c
        return None


@dataclass(frozen=True)
class Endpoint:
    ip: str
    node: str | None
    ready: bool = True
    pod: str = ""


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    protocol: str = "TCP"
    node_port: int | None = None


@dataclass(frozen=True)
class ServiceFacts:
    namespace: str
    name: str
    cluster_ip: str | None
    type: str = "ClusterIP"
    ports: tuple[ServicePort, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    external_traffic_policy: str = "Cluster"
    internal_traffic_policy: str = "Cluster"  # Local: each node's kube-proxy DNATs to its own endpoints only
    # spec.clusterIPs: one per family on dual-stack (cluster_ip is the first); () when not recorded
    cluster_ips: tuple[str, ...] = ()

    @property
    def all_cluster_ips(self) -> tuple[str, ...]:
        """Every ClusterIP of the Service, the primary first."""
        # a headless Service's clusterIP(s) are the word "None"
        first = (self.cluster_ip,) if self.cluster_ip and self.cluster_ip != "None" else ()
        return first + tuple(ip for ip in self.cluster_ips if ip not in first and ip != "None")

    def endpoints_for(self, node: str) -> tuple[Endpoint, ...]:
        """The ready endpoints kube-proxy on `node` sends ClusterIP traffic to."""
        if self.internal_traffic_policy == "Local":
            return tuple(e for e in self.ready_endpoints if e.node == node)
        return self.ready_endpoints

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ready_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.ready)


@dataclass(frozen=True)
class PodFacts:
    namespace: str
    name: str
    node: str | None
    phase: str
    ready: bool
    restarts: int = 0
    reason: str = ""  # waiting/terminated reason, e.g. CrashLoopBackOff
    ip: str | None = None


@dataclass
class ClusterFacts:
    nodes: dict[str, NodeFacts] = field(default_factory=dict)
    services: dict[str, ServiceFacts] = field(default_factory=dict)  # "ns/name"
    coredns: list[PodFacts] = field(default_factory=list)
    kube_proxy: list[PodFacts] = field(default_factory=list)
    dns_service: str = "kube-system/kube-dns"
    probe_services: tuple[str, ...] = ()  # keys of the suite's Services
    cluster_cidr: str | None = None  # flannel FLANNEL_NETWORK when known
    proxy_mode: str | None = None  # kube-system/kube-proxy ConfigMap `mode` (None: unreadable, absent or "")
    # node -> the kubelet's newest FailedCreatePodSandBox message for a probe pod there (diagnose/sandbox.py)
    sandbox_failures: dict[str, str] = field(default_factory=dict)
    corefile: str | None = None  # kube-system/coredns ConfigMap `Corefile` (None: unreadable or absent)
    # the names the DNS checks ask, fully qualified, -> what the API says they must resolve to (both families)
    dns_expect: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def pod_ips_on(self, node: str) -> list[str]:
        """IPs of the pods the API places on a node (Service endpoints, CoreDNS): `ip route get` targets."""
        ips = {e.ip for s in self.services.values() for e in s.endpoints if e.node == node}
        ips |= {p.ip for p in self.coredns if p.node == node and p.ip}
        return sorted(ips)

    def dns_queries(self) -> list[tuple[str, str, str]]:
        """(name, CoreDNS pod IP, a|aaaa): each name the DNS checks ask, of each CoreDNS pod directly."""
        out = []
        for name, want in sorted(self.dns_expect.items()):
            types = sorted({"aaaa" if ":" in ip else "a" for ip in want} or {"a"})
            out += [(name, p.ip, t) for p in self.coredns if p.ip for t in types]
        return out

    def node_of_ip(self, ip: str) -> str | None:
        """Node owning an IP: node address or pod CIDR."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for n in self.nodes.values():
            if ip in (n.internal_ip, n.public_ip, n.internal_ip_v6):
                return n.name
        for n in self.nodes.values():
            for c in n.pod_cidrs:
                if addr in ipaddress.ip_network(c, strict=False):
                    return n.name
        return None

    def is_node_ip(self, ip: str) -> bool:
        return any(ip in (n.internal_ip, n.public_ip, n.internal_ip_v6) for n in self.nodes.values() if ip)

    def service_by_ip(self, ip: str) -> ServiceFacts | None:
        for s in self.services.values():
            if ip in s.all_cluster_ips:
                return s
        return None


# ---------------------------------------------------------------- from the API


def _pod_facts(p: Any) -> PodFacts:
    st = p.status
    ready = any(c.type == "Ready" and c.status == "True" for c in (st.conditions or []))
    restarts, reason = 0, ""
    for cs in st.container_statuses or []:
        restarts += cs.restart_count or 0
        if cs.state and cs.state.waiting and cs.state.waiting.reason:
            reason = cs.state.waiting.reason
        elif cs.state and cs.state.terminated and cs.state.terminated.reason:
            reason = cs.state.terminated.reason
    return PodFacts(
        p.metadata.namespace, p.metadata.name, p.spec.node_name, st.phase or "", ready, restarts, reason, st.pod_ip
    )


def _service_facts(
    core: k8s.CoreV1Api, discovery: k8s.DiscoveryV1Api, namespace: str, name: str
) -> ServiceFacts | None:
    try:
        svc = core.read_namespaced_service(name, namespace, _request_timeout=10)
    except k8s.ApiException:
        return None
    spec = svc.spec or k8s.V1ServiceSpec()
    ports = tuple(ServicePort(p.name or "", p.port, p.protocol or "TCP", p.node_port) for p in spec.ports or [])
    eps: list[Endpoint] = []
    slices = discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={name}", _request_timeout=10
    )
    for sl in slices.items:
        for e in sl.endpoints or []:
            ready = e.conditions.ready if e.conditions and e.conditions.ready is not None else True
            pod = (e.target_ref.name or "") if e.target_ref else ""
            for a in e.addresses:
                eps.append(Endpoint(a, e.node_name, bool(ready), pod))
    return ServiceFacts(
        namespace,
        name,
        spec.cluster_ip,
        spec.type or "ClusterIP",
        ports,
        tuple(sorted(set(eps), key=lambda x: x.ip)),
        spec.external_traffic_policy or "Cluster",
        spec.internal_traffic_policy or "Cluster",
        # clusterIPs: `cluster_ips`, or `cluster_i_ps` in older clients' split of the camel case
        tuple(getattr(spec, "cluster_ips", None) or getattr(spec, "cluster_i_ps", None) or ()),
    )


def facts_from_api(
    api_client: k8s.ApiClient,
    probe_namespace: str | None,
    probe_services: tuple[str, ...] = ("nc-server", "nc-nodeport", "nc-nodeport-local", "nc-hairpin"),
) -> ClusterFacts:
    """Read nodes, Services/EndpointSlices, CoreDNS and kube-proxy pods (bounded calls)."""
    core = k8s.CoreV1Api(api_client)
    discovery = k8s.DiscoveryV1Api(api_client)
    facts = ClusterFacts()
    for node in list_nodes(api_client):
        facts.nodes[node.name] = NodeFacts.from_node(node)
    keys = [("kube-system", "kube-dns")] + [(probe_namespace, s) for s in probe_services if probe_namespace]
    for ns, name in keys:
        sf = _service_facts(core, discovery, ns, name)
        if sf is not None:
            facts.services[sf.key] = sf
    facts.probe_services = tuple(
        f"{probe_namespace}/{s}" for s in probe_services if f"{probe_namespace}/{s}" in facts.services
    )
    facts.coredns = [
        _pod_facts(p)
        for p in core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns", _request_timeout=10).items
    ]
    facts.kube_proxy = [
        _pod_facts(p)
        for p in core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-proxy", _request_timeout=10).items
    ]
    facts.proxy_mode = _proxy_mode(core)
    facts.sandbox_failures = sandbox_failures(api_client, probe_namespace) if probe_namespace else {}
    facts.corefile = _corefile(core)
    facts.dns_expect = _dns_expect(core, discovery, facts, probe_namespace)
    return facts


def _corefile(core: k8s.CoreV1Api) -> str | None:
    """The Corefile from kube-system/coredns (the optional netconform-inspect role); None if unread."""
    try:
        cm = core.read_namespaced_config_map("coredns", "kube-system", _request_timeout=10)
    except k8s.ApiException:
        return None
    return (cm.data or {}).get("Corefile")


def cluster_domain(corefile: str | None) -> str:
    """The zone of CoreDNS's kubernetes plugin (`kubernetes cluster.local in-addr.arpa ...`)."""
    m = re.search(r"^\s*kubernetes\s+([A-Za-z0-9.-]+)", corefile or "", re.M)
    return m.group(1).rstrip(".") if m else "cluster.local"


def _dns_expect(
    core: k8s.CoreV1Api, discovery: k8s.DiscoveryV1Api, facts: ClusterFacts, probe_namespace: str | None
) -> dict[str, tuple[str, ...]]:
    """What suites/test_dns.py's names must resolve to: nc-server and default/kubernetes to their
    ClusterIPs, the headless nc-headless to its ready endpoints."""
    domain = cluster_domain(facts.corefile)
    out: dict[str, tuple[str, ...]] = {}
    wanted = [("default", "kubernetes")] + (
        [(probe_namespace, n) for n in ("nc-server", "nc-headless")] if probe_namespace else []
    )
    for ns, name in wanted:
        sf = facts.services.get(f"{ns}/{name}") or _service_facts(core, discovery, ns, name)
        if sf is None:
            continue
        ips = sf.all_cluster_ips or tuple(sorted({e.ip for e in sf.ready_endpoints}))
        out[f"{name}.{ns}.svc.{domain}"] = ips
    return out


def _proxy_mode(core: k8s.CoreV1Api) -> str | None:
    """kube-proxy's `mode` from kube-system/kube-proxy (the optional netconform-inspect role); None if unread."""
    try:
        cm = core.read_namespaced_config_map("kube-proxy", "kube-system", _request_timeout=10)
    except k8s.ApiException:
        return None
    for text in (cm.data or {}).values():
        # YAML (kubeadm's config.conf) or JSON
        m = re.search(r"^mode:\s*[\"']?([A-Za-z]*)", text or "", re.M) or re.search(
            r'"mode"\s*:\s*"([A-Za-z]*)"', text or ""
        )
        if m:
            return m.group(1).lower() or "iptables"  # "" is the platform default: iptables on Linux
    return None
