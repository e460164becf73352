"""Deploying the probe workload of one run and describing what was built (`Deployment`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from kubernetes import client as k8s
from kubernetes import utils as k8s_utils

from netconform.errors import API_ERRORS, ProbeSetupError, api_error_sentence
from netconform.workload.labels import SERVICES, namespace_name
from netconform.workload.manifests import namespace_manifest, workload_manifests
from netconform.workload.readiness import PodRef, Progress, wait_ready

__all__ = ["DeployRequest", "Deployment", "deploy"]


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        return cls(
            **{
                **data,
                "servers": {n: PodRef(**p) for n, p in data["servers"].items()},
                "clients": {n: PodRef(**p) for n, p in data["clients"].items()},
            }
        )


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


def deploy(api: k8s.ApiClient, want: DeployRequest) -> Deployment:
    """Create the run namespace and the probe workload, and wait until it is Ready. Raises ProbeSetupError."""
    started = time.monotonic()
    ns = namespace_name(want.run_id)
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    _create(f"create namespace {ns}", lambda: core.create_namespace(namespace_manifest(want.run_id, want.keep)))
    services: dict[str, Any] = {}
    for manifest in workload_manifests(want.run_id, want.probe_image, want.node_names):
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind == "DaemonSet":
            _create(f"create daemonset {name} in {ns}", partial(apps.create_namespaced_daemon_set, ns, _body(manifest)))
        else:
            services[name] = _create(
                f"create service {name} in {ns}", partial(core.create_namespaced_service, ns, _body(manifest))
            )
    for extra in want.extra_manifests:
        _create_extra(api, ns, extra)
    kubernetes_ip = _create(
        "read service kubernetes in default", lambda: core.read_namespaced_service("kubernetes", "default")
    ).spec.cluster_ip
    servers, clients = wait_ready(core, ns, want.node_names, want.ready_timeout_s, want.progress)
    return Deployment(
        namespace=ns,
        servers=servers,
        clients=clients,
        cluster_ip=services[SERVICES["clusterip"]].spec.cluster_ip,
        node_port=_node_port(services[SERVICES["nodeport"]]),
        node_port_local=_node_port(services[SERVICES["nodeport_local"]]),
        kubernetes_ip=kubernetes_ip,
        cluster_domain=want.cluster_domain,
        seconds=round(time.monotonic() - started, 2),
    )


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
