"""Deploying the probe workload of one run and describing what was built (`Deployment`)."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from kubernetes import client as k8s
from kubernetes import utils as k8s_utils

from netconform.errors import API_ERRORS, ProbeSetupError, api_error_sentence
from netconform.kube.inventory import family_of
from netconform.workload.labels import HAIRPIN_SERVICE, POLICY, SERVICES, SINGLE, namespace_name
from netconform.workload.manifests import namespace_manifest, workload_manifests
from netconform.workload.pod_mtu import read_pod_mtu
from netconform.workload.readiness import KUBE_PROXY_SETTLE_S, PodRef, Progress, roles_for, wait_ready

__all__ = ["DeployRequest", "Deployment", "deploy", "mtu_destinations"]


@dataclass
class Deployment:
    """What the run built: pods per node and the Services' addresses (JSON-able, shared with xdist workers)."""

    namespace: str
    servers: dict[str, PodRef]
    clients: dict[str, PodRef]
    cluster_ip: str
    node_port: int
    node_port_local: int
    kubernetes_ip: str
    cluster_domain: str
    seconds: float = 0.0
    # per IP family ("ipv4" | "ipv6"): the Services' ClusterIPs (a family missing: the cluster gave none)
    cluster_ips: dict[str, str] = field(default_factory=dict)
    kubernetes_ips: dict[str, str] = field(default_factory=dict)
    hairpin_ips: dict[str, str] = field(default_factory=dict)
    single: PodRef | None = None  # the one pod behind the eTP=Local NodePort node_port_single
    node_port_single: int = 0
    # the client pods' route MTU toward the peers (read in one of them); 0: unknown, see pod_mtu_error
    pod_mtu: int = 0
    pod_mtu_error: str = ""
    # Service name -> family -> ClusterIP, for every Service with one (what kube-proxy programs)
    service_ips: dict[str, dict[str, str]] = field(default_factory=dict)
    # how long the wait for kube-proxy took (netconform.dialing.settle) and what it could not confirm
    settle_s: float = 0.0
    settle_execs: int = 0
    settle_note: str = ""
    # selected nodes whose probe pods did not become Ready in the wait -> why (their tests fail with it)
    unusable: dict[str, str] = field(default_factory=dict)
    # the NetworkPolicy check's own pods: a target per node, the one allowed client (first node); only
    # when that check is selected (`network_policy`)
    network_policy: bool = True
    policy_targets: dict[str, PodRef] = field(default_factory=dict)
    policy_client: PodRef | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        single, policy_client = data.get("single"), data.get("policy_client")
        return cls(
            **{
                **data,
                "servers": {n: PodRef.from_dict(p) for n, p in data["servers"].items()},
                "clients": {n: PodRef.from_dict(p) for n, p in data["clients"].items()},
                "single": PodRef.from_dict(single) if single else None,
                "policy_targets": {n: PodRef.from_dict(p) for n, p in data.get("policy_targets", {}).items()},
                "policy_client": PodRef.from_dict(policy_client) if policy_client else None,
            }
        )

    def service_ip(self, family: str) -> str | None:
        """nc-server's ClusterIP of `family`, if the cluster gave it one."""
        return self.cluster_ips.get(family) or (self.cluster_ip if family_of(self.cluster_ip) == family else None)

    def kubernetes_service_ip(self, family: str) -> str | None:
        """default/kubernetes's ClusterIP of `family` (the API Service is single-stack: one family only)."""
        ip = self.kubernetes_ip
        return self.kubernetes_ips.get(family) or (ip if family_of(ip) == family else None)


def _create(doing: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except API_ERRORS as exc:
        raise ProbeSetupError(api_error_sentence(exc, doing)) from None


@dataclass(frozen=True)
class DeployRequest:
    """What to deploy for one run."""

    run_id: str
    node_names: list[str]
    probe_image: str
    keep: bool
    ready_timeout_s: float
    cluster_domain: str
    extra_manifests: list[dict[str, Any]]
    progress: Progress | None = None  # hears what the readiness wait still waits for
    # after the Services list every pod, wait this long for kube-proxy; 0 when the caller confirms it
    # on the datapath itself (netconform.dialing.settle)
    settle_s: float = KUBE_PROXY_SETTLE_S
    network_policy: bool = True  # the NetworkPolicy check is selected: deploy its pods too


def deploy(api: k8s.ApiClient, want: DeployRequest) -> Deployment:
    """Create the run namespace and the probe workload, and wait until it is Ready. Raises ProbeSetupError."""
    started = time.monotonic()
    ns = namespace_name(want.run_id)
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    _create(f"create namespace {ns}", lambda: core.create_namespace(namespace_manifest(want.run_id, want.keep)))
    # everything in the namespace at once (the pods start sooner); errors surface in manifest order
    calls: list[tuple[str, str, Callable[[], Any]]] = []  # (key, what it does, call)
    for manifest in workload_manifests(want.run_id, want.probe_image, want.node_names, want.network_policy):
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind == "DaemonSet":
            create: Callable[[], Any] = partial(apps.create_namespaced_daemon_set, ns, _body(manifest))
            calls.append((f"daemonset {name}", f"create daemonset {name} in {ns}", create))
        else:
            create = partial(core.create_namespaced_service, ns, _body(manifest))
            calls.append((f"service {name}", f"create service {name} in {ns}", create))
    for i, extra in enumerate(want.extra_manifests):
        calls.append(
            (f"extra {i}", f"create {extra.get('kind', 'object')} in {ns}", partial(_create_extra, api, ns, extra))
        )
    calls.append(
        (
            "kubernetes",
            "read service kubernetes in default",
            partial(core.read_namespaced_service, "kubernetes", "default"),
        )
    )
    with concurrent.futures.ThreadPoolExecutor(max_workers=CREATE_PARALLEL) as pool:
        futures = [(key, doing, pool.submit(call)) for key, doing, call in calls]
        made = {key: _created(doing, future) for key, doing, future in futures}
    services = {key.removeprefix("service "): obj for key, obj in made.items() if key.startswith("service ")}
    kubernetes = made["kubernetes"]
    kubernetes_ip, kubernetes_ips = kubernetes.spec.cluster_ip, _cluster_ips(kubernetes)
    roles = roles_for(want.network_policy)
    ready = wait_ready(core, ns, want.node_names, want.ready_timeout_s, want.progress, want.settle_s, roles)
    pods = ready.pods
    servers, clients = pods["server"], pods["client"]
    first = next((clients[n] for n in want.node_names if n in clients), None)
    server = services[SERVICES["clusterip"]]
    mtu, mtu_error = (
        read_pod_mtu(api, ns, first.name, mtu_destinations(first, servers, _cluster_ips(server)))
        if first
        else (0, "no node")
    )
    return Deployment(
        namespace=ns,
        servers=servers,
        clients=clients,
        cluster_ip=server.spec.cluster_ip,
        node_port=_node_port(services[SERVICES["nodeport"]]),
        node_port_local=_node_port(services[SERVICES["nodeport_local"]]),
        kubernetes_ip=kubernetes_ip,
        cluster_domain=want.cluster_domain,
        seconds=round(time.monotonic() - started, 2),
        cluster_ips=_cluster_ips(server),
        kubernetes_ips=kubernetes_ips,
        hairpin_ips=_cluster_ips(services[HAIRPIN_SERVICE]),
        single=next(iter(pods[SINGLE["role"]].values()), None),
        node_port_single=_node_port(services[SINGLE["service"]]),
        pod_mtu=mtu,
        pod_mtu_error=mtu_error,
        service_ips={name: ips for name, svc in services.items() if (ips := _cluster_ips(svc))},
        unusable=ready.unusable,
        network_policy=want.network_policy,
        policy_targets=pods.get(POLICY["target_role"], {}),
        policy_client=next(iter(pods.get(POLICY["client_role"], {}).values()), None),
    )


CREATE_PARALLEL = 8


def _created(doing: str, future: concurrent.futures.Future[Any]) -> Any:
    """The result of one create; an API error as the one-sentence ProbeSetupError it always was."""
    try:
        return future.result()
    except API_ERRORS as exc:
        raise ProbeSetupError(api_error_sentence(exc, doing)) from None


def _cluster_ips(svc: Any) -> dict[str, str]:
    """family -> ClusterIP of a Service (spec.clusterIPs; the client has spelled it two ways)."""
    many = getattr(svc.spec, "cluster_ips", None) or getattr(svc.spec, "cluster_i_ps", None) or [svc.spec.cluster_ip]
    out: dict[str, str] = {}
    for ip in many:
        fam = family_of(ip) if ip and ip != "None" else None
        if fam:
            out.setdefault(fam, ip)
    return out


def mtu_destinations(client: PodRef, servers: dict[str, PodRef], cluster_ips: dict[str, str]) -> list[str]:
    """Where the full-size datagrams from `client` go: the server pods on other nodes and the ClusterIP."""
    peers = [ip for node, pod in sorted(servers.items()) if node != client.node for ip in pod.ips or (pod.ip,)]
    return [*peers, *cluster_ips.values()]


def _body(manifest: dict[str, Any]) -> Any:
    """A manifest dict as a request body: the client sends dicts as they are (typed as its models)."""
    return manifest


def _node_port(svc: Any) -> int:
    return next(int(p.node_port) for p in svc.spec.ports if p.protocol == "TCP")


def _create_extra(api: k8s.ApiClient, namespace: str, manifest: dict[str, Any]) -> None:
    try:
        k8s_utils.create_from_dict(api, manifest, namespace=namespace)
    except k8s_utils.FailToCreateError as exc:
        first = exc.api_exceptions[0] if exc.api_exceptions else exc
        what = f"create {manifest.get('kind', 'object')} {manifest.get('metadata', {}).get('name', '')} in {namespace}"
        raise ProbeSetupError(api_error_sentence(first, what)) from None
