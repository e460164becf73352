"""Node and cluster evidence: what we read, and its parsed form.

One shell script per node gathers every section in a single exec (one round
trip per node, not thirty); each command inside is bounded by `timeout`.
Parsing is lazy and pure, so unit tests feed recorded output straight in.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import iptables, parsers

CMD_TIMEOUT_S = 10

# (section name, shell command). $FS is the node's root as the agent mounts it (/host) or "".
SECTIONS: tuple[tuple[str, str], ...] = (
    ("kernel", "uname -r"),
    ("link", "ip -d link show"),
    ("addr", "ip -o addr show"),
    ("neigh_flannel", "ip neigh show dev flannel.1"),
    ("fdb_flannel", "bridge fdb show dev flannel.1"),
    ("route", "ip route show"),
    # both backends are live in the kernel at once; legacy only when its tables exist
    ("iptables", "if command -v iptables-nft-save >/dev/null; then iptables-nft-save -c; else iptables-save -c; fi"),
    (
        "iptables_legacy",
        "[ -s /proc/net/ip_tables_names ] || { echo '# no legacy tables'; exit 0; }; "
        "command -v iptables-legacy-save >/dev/null || { echo '# no iptables-legacy-save'; exit 0; }; "
        "iptables-legacy-save -c",
    ),
    (
        "sysctl",
        "sysctl net.ipv4.ip_forward net.ipv4.tcp_timestamps net.ipv4.tcp_tw_recycle "
        "net.bridge.bridge-nf-call-iptables net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter",
    ),
    ("rp_filter", "grep -H . /proc/sys/net/ipv4/conf/*/rp_filter"),
    ("conntrack", "conntrack -S"),
    ("nstat", "nstat -as"),
    ("netstat", "netstat -s"),
    ("subnet_env", "cat $FS/run/flannel/subnet.env"),
    ("flannel_docker", "cat $FS/run/flannel/docker"),
    ("hairpin", "grep -H . /sys/class/net/*/brport/hairpin_mode"),
    ("bridge_link", "bridge -d link show"),
    ("cni_conf", "cat $FS/etc/cni/net.d/*.conf*"),
)

SECTION_MARK = "@@nc-section"
# tools busybox also provides as applets (which busybox sh would run instead of the real ones)
REAL_TOOLS = ("ip", "sysctl", "netstat", "tc")


def gather_script(timeout_s: int = CMD_TIMEOUT_S) -> str:
    """The POSIX sh script run on a node. Output: `@@nc-section NAME rc=N` then the text."""
    lines = [
        "FS=${NC_HOSTFS-/host}; [ -d \"$FS/run\" ] || FS=''",
        f"T=''; command -v timeout >/dev/null 2>&1 && T='timeout {timeout_s}'",
        "export FS",
        # busybox sh prefers its own applets over PATH (its `ip` has no -d, its `netstat` no -s):
        # every inner shell gets functions pointing at the real binaries when the image has them
        "P=''; for t in " + " ".join(REAL_TOOLS) + "; do for d in /usr/sbin /sbin /usr/bin /bin /usr/local/sbin; do "
        'if [ -x "$d/$t" ] && ! [ "$d/$t" -ef /bin/busybox ]; then P="$P $t() { $d/$t \\"\\$@\\"; };"; break; fi; '
        "done; done",
        'sec() { n=$1; shift; o=$($T sh -c "$P $*" 2>&1); r=$?; '
        f'printf \'{SECTION_MARK} %s rc=%d\\n%s\\n\' "$n" "$r" "$o"; }}',
    ]
    for name, cmd in SECTIONS:
        lines.append(f"sec {name} {_sh_quote(cmd)}")
    return "\n".join(lines) + "\n"


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


@dataclass(frozen=True)
class Section:
    name: str
    rc: int
    text: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def problem(self) -> str | None:
        """Why this section could not be read, in words; None when it was read."""
        low = self.text.lower()
        if self.rc == 0:
            return None
        if self.rc == 127 or "not found" in low:
            return f"command not found ({self.text.strip().splitlines()[-1] if self.text.strip() else 'rc 127'})"
        if self.rc in (124, 137):
            return f"timed out after {CMD_TIMEOUT_S}s"
        if "permission denied" in low or "operation not permitted" in low:
            return "permission denied: " + self.text.strip().splitlines()[0]
        return f"rc {self.rc}: " + (self.text.strip().splitlines()[0] if self.text.strip() else "no output")


def split_sections(output: str) -> dict[str, Section]:
    out: dict[str, Section] = {}
    name: str | None = None
    rc = 0
    buf: list[str] = []
    for line in output.splitlines():
        m = re.match(rf"^{SECTION_MARK} (\S+) rc=(\d+)$", line)
        if m:
            if name is not None:
                out[name] = Section(name, rc, "\n".join(buf))
            name, rc, buf = m.group(1), int(m.group(2)), []
        elif name is not None:
            buf.append(line)
    if name is not None:
        out[name] = Section(name, rc, "\n".join(buf))
    return out


# ---------------------------------------------------------------- node evidence


@dataclass
class NodeEvidence:
    """Everything read from one node. `error` set = the node could not be inspected at all."""

    node: str
    sections: dict[str, Section] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def from_output(cls, node: str, output: str) -> NodeEvidence:
        return cls(node, split_sections(output))

    def text(self, name: str) -> str:
        s = self.sections.get(name)
        return s.text if s is not None and s.ok else ""

    def has(self, name: str) -> bool:
        s = self.sections.get(name)
        return s is not None and s.ok

    def problem(self, name: str) -> str | None:
        if self.error:
            return self.error
        s = self.sections.get(name)
        if s is None:
            return "not gathered"
        if name == "sysctl" and self.sysctl:
            return None  # partial output is expected: absent keys are facts, not failures
        return s.problem()

    @functools.cached_property
    def links(self) -> dict[str, parsers.Link]:
        return parsers.parse_ip_link(self.text("link"))

    @functools.cached_property
    def addrs(self) -> dict[str, list[str]]:
        return parsers.parse_addrs(self.text("addr"))

    @functools.cached_property
    def neigh(self) -> list[parsers.Neigh]:
        return parsers.parse_neigh(self.text("neigh_flannel"), dev="flannel.1")

    @functools.cached_property
    def fdb(self) -> list[parsers.FdbEntry]:
        return parsers.parse_fdb(self.text("fdb_flannel"), dev="flannel.1")

    @functools.cached_property
    def routes(self) -> list[parsers.Route]:
        return parsers.parse_routes(self.text("route"))

    @functools.cached_property
    def tables(self) -> iptables.Tables:
        parts = [iptables.parse_iptables_save(self.text("iptables"), "nft")]
        if "*" in self.text("iptables_legacy"):
            parts.append(iptables.parse_iptables_save(self.text("iptables_legacy"), "legacy"))
        return iptables.merge_tables(parts)

    @functools.cached_property
    def sysctl(self) -> dict[str, str]:
        # sysctl exits non-zero when one key is absent (tcp_tw_recycle on >= 4.12) but prints the rest
        s = self.sections.get("sysctl")
        return parsers.parse_sysctl(s.text) if s is not None else {}

    def sysctl_line(self, key: str) -> str | None:
        s = self.sections.get("sysctl")
        return parsers.sysctl_line(s.text, key) if s else None

    @functools.cached_property
    def rp_filter(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.text("rp_filter").splitlines():
            m = re.match(r"^/proc/sys/net/ipv4/conf/([^/]+)/rp_filter:(\d+)$", line.strip())
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    @functools.cached_property
    def conntrack(self) -> dict[str, int]:
        return parsers.parse_conntrack_stats(self.text("conntrack"))

    @functools.cached_property
    def nstat(self) -> dict[str, int]:
        return parsers.parse_nstat(self.text("nstat"))

    @functools.cached_property
    def subnet_env(self) -> dict[str, str]:
        return parsers.parse_env_file(self.text("subnet_env"))

    @functools.cached_property
    def flannel_docker(self) -> dict[str, str]:
        return parsers.parse_env_file(self.text("flannel_docker"))

    @functools.cached_property
    def hairpin(self) -> dict[str, int]:
        return parsers.parse_hairpin(self.sections["hairpin"].text) if "hairpin" in self.sections else {}

    def line_of(self, section: str, predicate: Callable[[str], bool]) -> str | None:
        for line in self.text(section).splitlines():
            if predicate(line):
                return line.strip()
        return None


# ---------------------------------------------------------------- cluster facts

FLANNEL_BACKEND = "flannel.alpha.coreos.com/backend-data"
FLANNEL_PUBLIC_IP = "flannel.alpha.coreos.com/public-ip"


@dataclass(frozen=True)
class NodeFacts:
    name: str
    internal_ip: str | None
    pod_cidrs: tuple[str, ...]
    vtep_mac: str | None
    public_ip: str | None
    ready: bool = True
    backend_data: str = ""  # the annotation verbatim (quoted as evidence)

    @classmethod
    def from_annotations(
        cls,
        name: str,
        internal_ip: str | None,
        pod_cidrs: tuple[str, ...],
        annotations: dict[str, str],
        ready: bool = True,
    ) -> NodeFacts:
        raw = annotations.get(FLANNEL_BACKEND, "")
        mac = None
        try:
            mac = (json.loads(raw) or {}).get("VtepMAC") if raw else None
        except (ValueError, AttributeError):
            mac = None
        return cls(
            name,
            internal_ip,
            tuple(pod_cidrs),
            mac.lower() if mac else None,
            annotations.get(FLANNEL_PUBLIC_IP),
            ready,
            raw,
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

    def node_of_ip(self, ip: str) -> str | None:
        """Node owning an IP: node address or pod CIDR."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for n in self.nodes.values():
            if ip in (n.internal_ip, n.public_ip):
                return n.name
        for n in self.nodes.values():
            for c in n.pod_cidrs:
                if addr in ipaddress.ip_network(c, strict=False):
                    return n.name
        return None

    def is_node_ip(self, ip: str) -> bool:
        return any(ip in (n.internal_ip, n.public_ip) for n in self.nodes.values())

    def service_by_ip(self, ip: str) -> ServiceFacts | None:
        for s in self.services.values():
            if s.cluster_ip == ip:
                return s
        return None


@dataclass
class ClusterEvidence:
    facts: ClusterFacts
    nodes: dict[str, NodeEvidence] = field(default_factory=dict)

    def peers(self, node: str) -> list[NodeFacts]:
        return [n for n in self.facts.nodes.values() if n.name != node]


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


def _service_facts(core: Any, discovery: Any, namespace: str, name: str) -> ServiceFacts | None:
    from kubernetes.client.rest import ApiException

    try:
        svc = core.read_namespaced_service(name, namespace, _request_timeout=10)
    except ApiException:
        return None
    ports = tuple(ServicePort(p.name or "", p.port, p.protocol or "TCP", p.node_port) for p in svc.spec.ports or [])
    eps: list[Endpoint] = []
    slices = discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={name}", _request_timeout=10
    )
    for sl in slices.items:
        for e in sl.endpoints or []:
            ready = e.conditions.ready if e.conditions and e.conditions.ready is not None else True
            pod = e.target_ref.name if e.target_ref else ""
            for a in e.addresses:
                eps.append(Endpoint(a, e.node_name, bool(ready), pod))
    return ServiceFacts(
        namespace,
        name,
        svc.spec.cluster_ip,
        svc.spec.type or "ClusterIP",
        ports,
        tuple(sorted(set(eps), key=lambda x: x.ip)),
        svc.spec.external_traffic_policy or "Cluster",
    )


def facts_from_api(
    api_client: Any,
    probe_namespace: str | None,
    probe_services: tuple[str, ...] = ("nc-server", "nc-nodeport", "nc-nodeport-local"),
) -> ClusterFacts:
    """Read node annotations, Services/EndpointSlices, CoreDNS and kube-proxy pods (bounded calls)."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)
    facts = ClusterFacts()
    for n in core.list_node(_request_timeout=15).items:
        addrs = {a.type: a.address for a in n.status.addresses or []}
        # the attribute is pod_cid_rs in the older generated client, pod_cidrs in the newer one
        many = getattr(n.spec, "pod_cidrs", None) or getattr(n.spec, "pod_cid_rs", None)
        cidrs = tuple(many or ([n.spec.pod_cidr] if n.spec.pod_cidr else []))
        ready = any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
        facts.nodes[n.metadata.name] = NodeFacts.from_annotations(
            n.metadata.name, addrs.get("InternalIP"), cidrs, n.metadata.annotations or {}, ready
        )
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
    return facts


def facts_from_dict(data: dict[str, Any]) -> ClusterFacts:
    """ClusterFacts from plain data (tests, saved evidence); the shape of tests/data/recorded/facts.json."""
    facts = ClusterFacts()
    for n in data.get("nodes", []):
        facts.nodes[n["name"]] = NodeFacts.from_annotations(
            n["name"],
            n.get("internal_ip"),
            tuple(n.get("pod_cidrs", ())),
            n.get("annotations", {}),
            n.get("ready", True),
        )
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
                "pod_cidrs": list(n.pod_cidrs),
                "ready": n.ready,
                "annotations": {
                    k: v for k, v in ((FLANNEL_BACKEND, n.backend_data), (FLANNEL_PUBLIC_IP, n.public_ip)) if v
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
            }
            for s in facts.services.values()
        ],
        "probe_services": list(facts.probe_services),
        "coredns": pods(facts.coredns),
        "kube_proxy": pods(facts.kube_proxy),
        "cluster_cidr": facts.cluster_cidr,
    }
