"""The probe workload: one namespace per run, a server and a client pod per node, four Services.

Setup happens once per run, under xdist too: the first worker to need it deploys under a FileLock in
the directory all workers share (tmp_path_factory.getbasetemp().parent) and writes what it built as
JSON; the others read it. Teardown happens once, on the controller, and is idempotent: it deletes
the namespace named after the run id. Leftovers of runs that died are swept at the next start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock, Timeout
from kubernetes import client as k8s

from netconform import cluster as cl
from netconform.cluster import Cluster, CountingApiClient, NodeInfo
from netconform.errors import API_ERRORS, ProbeSetupError, api_error_sentence

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "netconform"
RUN_LABEL = "netconform.io/run-id"
ROLE_LABEL = "netconform.io/role"
CREATED_ANNOTATION = "netconform.io/created"
OWNER_ANNOTATION = "netconform.io/owner"
KEEP_ANNOTATION = "netconform.io/keep"

DEFAULT_IMAGES = {
    "probe": "ghcr.io/netconform/probe:0.1.0",
    "agent": "docker.io/nicolaka/netshoot:v0.13",
}
HTTP_PORT, UDP_PORT = 8080, 8081
SERVICES = {
    "clusterip": "nc-server",
    "nodeport": "nc-nodeport",
    "nodeport_local": "nc-nodeport-local",
    "headless": "nc-headless",
}
NAMESPACE_GONE_WAIT_S = 60.0
# kube-proxy applies EndpointSlice changes asynchronously (iptables min-sync-period is 1s by default);
# dialing the moment the slices list every server found nodes still balancing over the old set.
KUBE_PROXY_SETTLE_S = 3.0

_SWEPT = pytest.StashKey[list[str]]()
_CALLS = pytest.StashKey[dict[str, int]]()


# ---------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform", "netconform: which cluster and nodes")
    group.addoption(
        "--image-repo",
        metavar="REPO",
        help="pull every netconform image from REPO (e.g. registry.local/mirror) instead of its public registry",
    )
    group.addoption("--probe-image", metavar="REF", help=f"probe image (default {DEFAULT_IMAGES['probe']})")
    group.addoption("--agent-image", metavar="REF", help=f"node agent image (default {DEFAULT_IMAGES['agent']})")
    group.addoption("--keep", action="store_true", help="leave the run namespace and its probes in place")
    group.addoption(
        "--sweep-age",
        metavar="AGE",
        type=parse_age,
        default="1h",
        help="remove leftover netconform namespaces older than AGE, e.g. 30m, 2h (default 1h)",
    )
    group.addoption(
        "--ready-timeout",
        metavar="SECONDS",
        type=float,
        default=120.0,
        help="how long to wait for the probes to become Ready (default 120)",
    )
    group.addoption(
        "--dial-timeout",
        metavar="SECONDS",
        type=float,
        default=2.0,
        help="timeout of one connection attempt or DNS lookup (default 2)",
    )
    group.addoption(
        "--stability-count",
        metavar="N",
        type=cl._positive_int,
        default=100,
        help="consecutive new connections per stability check (default 100)",
    )
    group.addoption(
        "--cluster-domain",
        metavar="DOMAIN",
        default="cluster.local",
        help="cluster DNS domain for FQDN checks (default cluster.local)",
    )


def parse_age(text: str) -> float:
    """'90s', '30m', '2h', '1d' or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match:
        raise ValueError(f"{text!r} is not an age like 30m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def image_ref(default: str, repo: str | None, override: str | None) -> str:
    """--probe-image/--agent-image win; --image-repo keeps only the last path element (name:tag)."""
    if override:
        return override
    if repo:
        return f"{repo.rstrip('/')}/{default.rsplit('/', 1)[-1]}"
    return default


def images(config: pytest.Config) -> dict[str, str]:
    repo = config.getoption("image_repo")
    return {
        "probe": image_ref(DEFAULT_IMAGES["probe"], repo, config.getoption("probe_image")),
        "agent": image_ref(DEFAULT_IMAGES["agent"], repo, config.getoption("agent_image")),
    }


# ---------------------------------------------------------------- extension hook


class NetconformHookspecs:
    @pytest.hookspec
    def pytest_netconform_extra_manifests(self, config: pytest.Config, namespace: str, nodes: list[NodeInfo]) -> Any:
        """Return manifests (dicts) to create in the run namespace next to the probes (e.g. the node agent).

        They are created once with the probes and removed with the namespace; netconform does not wait for them.
        """


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(NetconformHookspecs)


# ---------------------------------------------------------------- namespace lifecycle


def namespace_name(run_id: str) -> str:
    return f"netconform-{run_id}"


def owner_token() -> str:
    """hostname/boot/pid of this pytest: lets the next run on this machine tell whether we are still alive."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "unknown"
    return f"{socket.gethostname()}/{boot}/{os.getpid()}"


def owner_alive(owner: str, here: str | None = None) -> bool | None:
    """True/False if `owner` ran on this machine (same host and boot) and its pid is/isn't alive; else None."""
    here = here or owner_token()
    try:
        host, boot, pid = owner.rsplit("/", 2)
        my_host, my_boot, _ = here.rsplit("/", 2)
    except ValueError:
        return None
    if (host, boot) != (my_host, my_boot):
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def namespace_manifest(run_id: str, keep: bool) -> k8s.V1Namespace:
    return k8s.V1Namespace(
        metadata=k8s.V1ObjectMeta(
            name=namespace_name(run_id),
            labels={
                MANAGED_BY_LABEL: MANAGED_BY,
                RUN_LABEL: run_id,
                # the node agent (hostNetwork, privileged) lives here too
                "pod-security.kubernetes.io/enforce": "privileged",
            },
            annotations={
                CREATED_ANNOTATION: str(int(time.time())),
                OWNER_ANNOTATION: owner_token(),
                KEEP_ANNOTATION: "true" if keep else "false",
            },
        )
    )


def stale_reason(ns: Any, own_run: str, max_age_s: float, now: float, here: str | None = None) -> str | None:
    """Why a managed namespace is a leftover to remove, or None to leave it alone."""
    meta = ns.metadata
    labels, annotations = meta.labels or {}, meta.annotations or {}
    if labels.get(RUN_LABEL) == own_run or (ns.status and ns.status.phase == "Terminating"):
        return None
    try:
        created = float(annotations.get(CREATED_ANNOTATION, ""))
    except ValueError:
        created = meta.creation_timestamp.timestamp() if meta.creation_timestamp else now
    age = now - created
    if age > max_age_s:
        return f"created {_age_words(age)} ago"
    kept = annotations.get(KEEP_ANNOTATION) == "true"
    if not kept and owner_alive(annotations.get(OWNER_ANNOTATION, ""), here) is False:
        return "its pytest process is gone"
    return None


def _age_words(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.0f}h"
    if seconds >= 120:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


def sweep(core: k8s.CoreV1Api, own_run: str, max_age_s: float) -> list[str]:
    """Delete leftover run namespaces; returns one line per namespace removed."""
    found = core.list_namespace(label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}").items
    said = []
    now = time.time()
    for ns in found:
        why = stale_reason(ns, own_run, max_age_s, now)
        if why is None:
            continue
        try:
            core.delete_namespace(ns.metadata.name)
        except API_ERRORS as exc:
            if getattr(exc, "status", None) != 404:
                said.append(
                    f"could not remove leftover namespace {ns.metadata.name}: {api_error_sentence(exc, 'delete it')}"
                )
            continue
        said.append(f"removed leftover namespace {ns.metadata.name} ({why})")
    return said


def delete_namespace(core: k8s.CoreV1Api, name: str, wait_s: float = NAMESPACE_GONE_WAIT_S) -> str | None:
    """Delete the run namespace and wait (bounded) until it is gone. Idempotent; returns what to tell the user."""
    started = time.monotonic()
    try:
        core.delete_namespace(name, grace_period_seconds=0)
    except API_ERRORS as exc:
        if getattr(exc, "status", None) == 404:
            return None
        return api_error_sentence(exc, f"delete namespace {name}") + "; the next run sweeps it"
    while time.monotonic() - started < wait_s:
        try:
            core.read_namespace(name)
        except API_ERRORS as exc:
            if getattr(exc, "status", None) == 404:
                return f"removed namespace {name} ({time.monotonic() - started:.1f}s)"
            return api_error_sentence(exc, f"check that namespace {name} is gone")
        time.sleep(0.5)
    return f"namespace {name} is still terminating after {wait_s:.0f}s; it will finish on its own (or be swept)"


# ---------------------------------------------------------------- manifests


def only_on(node_names: list[str]) -> dict[str, Any]:
    """Pod affinity to exactly these nodes: matchFields on the name is how the DaemonSet controller
    itself pins pods, and the API allows one value per field term, so one (ORed) term per node."""
    terms = [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [n]}]} for n in node_names]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def _probe_daemonset(name: str, role: str, run_id: str, image: str, node_names: list[str]) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, MANAGED_BY_LABEL: MANAGED_BY, ROLE_LABEL: role, RUN_LABEL: run_id}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {ROLE_LABEL: role, RUN_LABEL: run_id}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": only_on(node_names),
                    "tolerations": [{"operator": "Exists"}],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "probe",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["serve", "--http-port", str(HTTP_PORT), "--udp-port", str(UDP_PORT)],
                            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                            "ports": [
                                {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                                {"name": "udp", "containerPort": UDP_PORT, "protocol": "UDP"},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": HTTP_PORT}, "periodSeconds": 2},
                            # requests but no CPU limit: a throttled probe reports timeouts that are not the network's
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": 65534,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def _service(name: str, run_id: str, kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {ROLE_LABEL: "server", RUN_LABEL: run_id},
        "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"}],
    }
    if kind == "clusterip":
        spec["ports"].append({"name": "udp", "port": UDP_PORT, "targetPort": UDP_PORT, "protocol": "UDP"})
    elif kind == "headless":
        spec["clusterIP"] = "None"
    else:
        spec["type"] = "NodePort"
        spec["externalTrafficPolicy"] = "Local" if kind == "nodeport_local" else "Cluster"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY, RUN_LABEL: run_id}},
        "spec": spec,
    }


def workload_manifests(run_id: str, probe_image: str, node_names: list[str]) -> list[dict[str, Any]]:
    return [
        _probe_daemonset("nc-server", "server", run_id, probe_image, node_names),
        _probe_daemonset("nc-client", "client", run_id, probe_image, node_names),
        *(_service(name, run_id, kind) for kind, name in SERVICES.items()),
    ]


# ---------------------------------------------------------------- readiness


@dataclass(frozen=True)
class PodRef:
    name: str
    ip: str
    node: str


def _is_ready(pod: Any) -> bool:
    return pod.status is not None and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
    )


def pod_problem(pod: Any, warnings: dict[str, str]) -> str:
    """Why a probe pod is not Ready, in the words kubectl would show (plus the image or message that matters)."""
    status = pod.status
    where = f"{pod.metadata.name} on {pod.spec.node_name or 'no node'}"
    for c in (status.conditions if status else None) or []:
        if c.type == "PodScheduled" and c.status == "False":
            return f"{where}: {c.reason or 'Unschedulable'} ({c.message or 'no scheduler message'})"
    for cs in (status.container_statuses if status else None) or []:
        waiting = cs.state.waiting if cs.state else None
        if waiting and waiting.reason in ("ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName"):
            return f"{where}: {waiting.reason} for image {cs.image}" + (
                f" ({_short(waiting.message)})" if waiting.message else ""
            )
        if waiting and waiting.reason == "CrashLoopBackOff":
            last = cs.last_state.terminated if cs.last_state else None
            tail = (
                f"last exit code {last.exit_code}" + (f" ({last.reason})" if last and last.reason else "")
                if last
                else "no exit recorded"
            )
            return f"{where}: CrashLoopBackOff, {tail}, {cs.restart_count} restarts"
        if waiting and waiting.reason:
            extra = warnings.get(pod.metadata.name) or waiting.message
            return f"{where}: {waiting.reason}" + (f" ({_short(extra)})" if extra else "")
        if cs.state and cs.state.running and not cs.ready:
            return f"{where}: running but not Ready (readiness probe on :{HTTP_PORT}/healthz failing)"
    phase = status.phase if status else "Unknown"
    extra = warnings.get(pod.metadata.name)
    return f"{where}: {phase}" + (f" ({_short(extra)})" if extra else "")


def _short(text: str, limit: int = 240) -> str:
    """One line; long kubelet/runtime messages keep their start and their end, where the cause is."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = limit // 4
    return f"{text[:head]} ... {text[-(limit - head - 5) :]}"


def _latest_warnings(core: k8s.CoreV1Api, namespace: str) -> dict[str, str]:
    """Newest Warning event message per pod (sandbox/CNI failures only show up there)."""
    try:
        events = core.list_namespaced_event(namespace, field_selector="type=Warning").items
    except API_ERRORS:
        return {}
    latest: dict[str, tuple[float, str]] = {}
    for ev in events:
        obj = ev.involved_object
        if not obj or obj.kind != "Pod":
            continue
        stamp = ev.last_timestamp or ev.event_time or ev.metadata.creation_timestamp
        key = stamp.timestamp() if stamp else 0.0
        if obj.name not in latest or key >= latest[obj.name][0]:
            latest[obj.name] = (key, f"{ev.reason}: {ev.message}")
    return {name: text for name, (_, text) in latest.items()}


def _placement(pods: list[Any], nodes: list[str]) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """Newest pod per (role, node), and the pods that are not Ready."""
    chosen: dict[str, dict[str, Any]] = {"server": {}, "client": {}}
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp or 0):
        role = (pod.metadata.labels or {}).get(ROLE_LABEL)
        if role in chosen and pod.spec.node_name in nodes and pod.metadata.deletion_timestamp is None:
            chosen[role][pod.spec.node_name] = pod
    not_ready = [p for p in pods if p.metadata.deletion_timestamp is None and not _is_ready(p)]
    return chosen, not_ready


def not_ready_message(
    pods: list[Any], nodes: list[str], warnings: dict[str, str], waited_s: float, slices_ok: bool
) -> str:
    chosen, not_ready = _placement(pods, nodes)
    # pods stuck for the same reason are named together, the reason once
    by_reason: dict[str, list[str]] = {}
    for pod in sorted(not_ready, key=lambda p: p.metadata.name):
        where, _, reason = pod_problem(pod, warnings).partition(": ")
        by_reason.setdefault(reason, []).append(where)
    problems = [f"{', '.join(wheres)}: {reason}" for reason, wheres in by_reason.items()]
    for role in ("server", "client"):
        for node in nodes:
            if node not in chosen[role]:
                problems.append(f"no nc-{role} pod on {node}")
    if not problems and not slices_ok:
        problems.append("the Services have no ready endpoints for every server pod yet (EndpointSlices)")
    return f"probes not Ready after {waited_s:.0f}s: " + "; ".join(problems)


def wait_ready(
    core: k8s.CoreV1Api, namespace: str, nodes: list[str], timeout_s: float
) -> tuple[dict[str, PodRef], dict[str, PodRef]]:
    """Wait (bounded) until every selected node has a Ready server and client and the Services list them all."""
    discovery = k8s.DiscoveryV1Api(core.api_client)
    started = time.monotonic()
    pods: list[Any] = []
    api_error = None
    covered_since: float | None = None
    while True:
        slices_ok = False
        try:
            pods = core.list_namespaced_pod(namespace, label_selector=ROLE_LABEL).items
            chosen, _ = _placement(pods, nodes)
            all_ready = all(
                node in chosen[role] and _is_ready(chosen[role][node])
                for role in ("server", "client")
                for node in nodes
            )
            if all_ready:
                server_ips = {chosen["server"][n].status.pod_ip for n in nodes}
                slices_ok = _endpoints_cover(discovery, namespace, server_ips)
            covered_since = (covered_since or time.monotonic()) if slices_ok else None
            if covered_since is not None and time.monotonic() - covered_since >= KUBE_PROXY_SETTLE_S:
                refs = {
                    role: {n: PodRef(p.metadata.name, p.status.pod_ip, n) for n, p in chosen[role].items()}
                    for role in chosen
                }
                return refs["server"], refs["client"]
            api_error = None
        except API_ERRORS as exc:
            # keep polling through a blip of the API; say so if it lasts until the deadline
            api_error = api_error_sentence(exc, f"list the probe pods in {namespace}")
        waited = time.monotonic() - started
        if waited >= timeout_s:
            if api_error:
                raise ProbeSetupError(f"probes not Ready after {waited:.0f}s: {api_error}")
            raise ProbeSetupError(not_ready_message(pods, nodes, _latest_warnings(core, namespace), waited, slices_ok))
        time.sleep(0.5 if covered_since else 1.0)


def _endpoints_cover(discovery: k8s.DiscoveryV1Api, namespace: str, server_ips: set[str]) -> bool:
    """Every Service lists every server pod as a ready endpoint (else early dials race kube-proxy)."""
    slices = discovery.list_namespaced_endpoint_slice(namespace).items
    ready: dict[str, set[str]] = {name: set() for name in SERVICES.values()}
    for s in slices:
        svc = (s.metadata.labels or {}).get("kubernetes.io/service-name")
        if svc not in ready:
            continue
        for ep in s.endpoints or []:
            if ep.conditions is None or ep.conditions.ready is not False:
                ready[svc].update(ep.addresses or [])
    return all(server_ips <= ips for ips in ready.values())


# ---------------------------------------------------------------- deployment


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


def deploy(config: pytest.Config, cluster: Cluster) -> Deployment:
    """Create the run namespace and the probe workload, and wait until it is Ready. Raises ProbeSetupError."""
    started = time.monotonic()
    run = cl.run_id(config)
    ns = namespace_name(run)
    core, apps = cluster.core, cluster.apps
    names = [n.name for n in cluster.nodes]
    _create(f"create namespace {ns}", lambda: core.create_namespace(namespace_manifest(run, config.getoption("keep"))))
    services: dict[str, Any] = {}
    for manifest in workload_manifests(run, images(config)["probe"], names):
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind == "DaemonSet":
            _create(f"create daemonset {name} in {ns}", lambda m=manifest: apps.create_namespaced_daemon_set(ns, m))
        else:
            services[name] = _create(
                f"create service {name} in {ns}", lambda m=manifest: core.create_namespaced_service(ns, m)
            )
    for extra in _flatten(
        config.hook.pytest_netconform_extra_manifests(config=config, namespace=ns, nodes=cluster.nodes)
    ):
        _create_extra(cluster.api_client, ns, extra)
    kubernetes_ip = _create(
        "read service kubernetes in default", lambda: core.read_namespaced_service("kubernetes", "default")
    ).spec.cluster_ip
    servers, clients = wait_ready(core, ns, names, config.getoption("ready_timeout"))

    def node_port(svc: Any) -> int:
        return next(p.node_port for p in svc.spec.ports if p.protocol == "TCP")

    return Deployment(
        namespace=ns,
        servers=servers,
        clients=clients,
        cluster_ip=services[SERVICES["clusterip"]].spec.cluster_ip,
        node_port=node_port(services[SERVICES["nodeport"]]),
        node_port_local=node_port(services[SERVICES["nodeport_local"]]),
        kubernetes_ip=kubernetes_ip,
        cluster_domain=config.getoption("cluster_domain"),
        seconds=round(time.monotonic() - started, 2),
    )


def _flatten(results: list[Any]) -> list[dict[str, Any]]:
    return [m for r in results if r for m in r]


def _create_extra(api: CountingApiClient, namespace: str, manifest: dict[str, Any]) -> None:
    from kubernetes import utils

    try:
        utils.create_from_dict(api, manifest, namespace=namespace)
    except utils.FailToCreateError as exc:
        first = exc.api_exceptions[0] if exc.api_exceptions else exc
        what = f"create {manifest.get('kind', 'object')} {manifest.get('metadata', {}).get('name', '')} in {namespace}"
        raise ProbeSetupError(api_error_sentence(first, what)) from None


# ---------------------------------------------------------------- shared, once per run


def shared_dir(tmp_path_factory: pytest.TempPathFactory, run: str) -> Path:
    """The directory every xdist worker of this run sees (the parent of each worker's basetemp)."""
    path = tmp_path_factory.getbasetemp().parent / namespace_name(run)
    path.mkdir(parents=True, exist_ok=True)
    return path


def once_per_run(
    directory: Path, key: str, compute: Callable[[], dict[str, Any]], wait_s: float, what: str
) -> dict[str, Any]:
    """First caller computes under a FileLock and writes JSON; later callers (other workers) read it.

    An error is shared the same way ({"error": ...}), so N workers do not each wait out the same timeout.
    """
    path = directory / f"{key}.json"
    try:
        with FileLock(str(path) + ".lock", timeout=wait_s):
            if path.is_file():
                return json.loads(path.read_text())
            data = compute()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(path)
            return data
    except Timeout:
        return {"error": f"waited {wait_s:.0f}s for another xdist worker to finish {what} (lock {path}.lock)"}


def _deploy_shared(config: pytest.Config, cluster: Cluster) -> dict[str, Any]:
    try:
        return deploy(config, cluster).to_dict()
    except ProbeSetupError as exc:
        return {"error": str(exc)}


@pytest.fixture(scope="session")
def probes(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Deployment:
    """The probe workload of this run (deployed by whichever process needs it first)."""
    run = cl.run_id(pytestconfig)
    data = once_per_run(
        shared_dir(tmp_path_factory, run),
        "deployment",
        lambda: _deploy_shared(pytestconfig, cluster),
        wait_s=pytestconfig.getoption("ready_timeout") + 120,
        what="deploying the probes",
    )
    if "error" in data:
        fail_run(request, data["error"])
    return Deployment.from_dict(data)


@pytest.fixture(scope="session")
def probe_namespace(probes: Deployment) -> str:
    """Name of the run namespace, with the probes deployed and Ready."""
    return probes.namespace


def fail_run(request: pytest.FixtureRequest, error: str) -> None:
    """Error this test and stop the session: every other test would repeat the same setup error."""
    request.session.shouldstop = f"netconform: {error}"
    pytest.fail(f"netconform: {error}", pytrace=False)


# ---------------------------------------------------------------- controller: sweep, teardown, summary


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not (cl.is_active(config) and cl.is_controller(config)):
        return
    try:
        config.stash[_SWEPT] = sweep(cl.get_cluster(config).core, cl.run_id(config), config.getoption("sweep_age"))
    except API_ERRORS as exc:
        config.stash[_SWEPT] = [f"could not sweep leftovers: {api_error_sentence(exc, 'list namespaces')}"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"netconform: {line}" for line in config.stash.get(_SWEPT, [])]


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not cl.is_active(config):
        return
    if not cl.is_controller(config):
        config.workeroutput["netconform_calls"] = _own_calls()  # type: ignore[attr-defined]
        return
    ns = namespace_name(cl.run_id(config))
    timings = _timings_and_forget(config, ns)
    if timings:
        _say(config, timings)
    if config.getoption("keep"):
        said: str | None = f"kept namespace {ns} (--keep); remove it with: kubectl delete namespace {ns}"
    else:
        said = delete_namespace(cl.get_cluster(config).core, ns)
    if said:
        _say(config, said)
    totals = config.stash.setdefault(_CALLS, {"api": 0, "exec": 0})
    for key, value in _own_calls().items():
        totals[key] += value


def _timings_and_forget(config: pytest.Config, ns: str) -> str | None:
    """Read how long setup and the fan-out took from the run's shared files, then remove them.

    Workers share the parent of their basetemp, which is the controller's own basetemp; without
    xdist it is the parent of the controller's basetemp.
    """
    basetemp = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    parts = []
    for directory in (basetemp / ns, basetemp.parent / ns):
        for key, words in (("deployment", "probes Ready in"), ("dials", "dial fan-out")):
            try:
                seconds = json.loads((directory / f"{key}.json").read_text()).get("seconds")
            except (OSError, ValueError):
                continue
            if seconds is not None:
                parts.append(f"{words} {seconds:.1f}s")
        shutil.rmtree(directory, ignore_errors=True)
    return ", ".join(parts) or None


def _own_calls() -> dict[str, int]:
    return {"api": CountingApiClient.calls, "exec": CountingApiClient.exec_calls}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: add each worker's API call counts to the controller's."""
    calls = getattr(node, "workeroutput", {}).get("netconform_calls")
    if calls:
        totals = node.config.stash.setdefault(_CALLS, {"api": 0, "exec": 0})
        for key, value in calls.items():
            totals[key] += value


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if cl.is_active(config) and cl.is_controller(config):
        calls = config.stash.get(_CALLS, None)
        if calls:
            terminalreporter.write_line(f"netconform: {calls['api']} API requests, {calls['exec']} probe execs")


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"netconform: {line}")
