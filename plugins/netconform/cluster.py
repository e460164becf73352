"""Which cluster, which nodes, which run: the connection every other plugin stands on.

Selection works like kubectl: --kubeconfig, then $KUBECONFIG, then ~/.kube/config, then the
in-cluster service account; --context picks a context. The controller (the only process without
xdist's `workerinput`) connects, checks access, lists the nodes and creates the run id; xdist
workers receive the run id and the node inventory through `workerinput`, so every worker collects
the same tests in the same order and none of them lists nodes again.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import signal
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from netconform.errors import API_TRANSPORT_ERRORS, UsageError, api_error_sentence

API_CONNECT_TIMEOUT_S = 3.0  # an unreachable API must fail fast, not after the OS's 2-minute SYN retries
API_READ_TIMEOUT_S = 30.0
INCLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

_RUN_ID = pytest.StashKey["str"]()
_CLUSTER = pytest.StashKey["Cluster"]()
_ACTIVE = pytest.StashKey[bool]()


@dataclass(frozen=True)
class NodeInfo:
    name: str
    internal_ip: str
    pod_cidrs: tuple[str, ...]
    ready: bool
    schedulable: bool
    kernel: str = ""
    os_image: str = ""
    kubelet_version: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def flannel_vtep_mac(self) -> str | None:
        raw = self.annotations.get("flannel.alpha.coreos.com/backend-data")
        try:
            return json.loads(raw).get("VtepMAC") if raw else None
        except (ValueError, AttributeError):
            return None

    @property
    def flannel_public_ip(self) -> str | None:
        return self.annotations.get("flannel.alpha.coreos.com/public-ip")

    @classmethod
    def from_api(cls, node: Any) -> NodeInfo:
        status, spec, meta = node.status, node.spec, node.metadata
        addresses = {a.type: a.address for a in (status.addresses or [])}
        conditions = {c.type: c.status for c in (status.conditions or [])}
        # the client renamed pod_cid_rs -> pod_cidrs (v35+); accept both
        many = getattr(spec, "pod_cidrs", None) or getattr(spec, "pod_cid_rs", None)
        cidrs = tuple(many or ([spec.pod_cidr] if spec.pod_cidr else []))
        info = status.node_info
        return cls(
            name=meta.name,
            internal_ip=addresses.get("InternalIP", ""),
            pod_cidrs=cidrs,
            ready=conditions.get("Ready") == "True",
            schedulable=not spec.unschedulable,
            kernel=info.kernel_version if info else "",
            os_image=info.os_image if info else "",
            kubelet_version=info.kubelet_version if info else "",
            labels=dict(meta.labels or {}),
            annotations=dict(meta.annotations or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeInfo:
        return cls(**{**data, "pod_cidrs": tuple(data["pod_cidrs"])})


@dataclass
class Cluster:
    """The cluster under test. `nodes` are the selected, schedulable, Ready nodes, sorted by name."""

    context: str
    cluster_name: str
    server: str
    version: str
    nodes: list[NodeInfo]
    all_nodes: list[NodeInfo]
    configuration: k8s.Configuration
    api_client: CountingApiClient

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client)

    @property
    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.api_client)

    def node(self, name: str) -> NodeInfo:
        for node in self.all_nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def owner_of(self, ip: str) -> str | None:
        """Which node an address belongs to, in words, or None (see ownership_of)."""
        return ownership_of(ip, self.all_nodes)


def ownership_of(ip: str, nodes: list[NodeInfo]) -> str | None:
    """Name the node that owns `ip` and in which role, the way an operator would look for it.

    A source IP seen in place of a pod IP is almost always a node's own address: its InternalIP,
    the `.0` of its podCIDR (flannel.1 in VXLAN mode) or the `.1` (the cni0 bridge).
    """
    import ipaddress

    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    for node in nodes:
        if node.internal_ip == ip:
            return f"{node.name}'s InternalIP"
    for node in nodes:
        for cidr in node.pod_cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            if addr == net.network_address:
                return f"{node.name}'s flannel.1 address (.0 of its podCIDR {cidr})"
            if addr == net.network_address + 1:
                return f"{node.name}'s cni0 bridge address (.1 of its podCIDR {cidr})"
            if addr in net:
                return f"a pod address on {node.name} (podCIDR {cidr})"
    return None


class CountingApiClient(k8s.ApiClient):
    """ApiClient that bounds every REST call in time and counts them (benchmark, terminal summary)."""

    calls = 0
    exec_calls = 0
    _lock = threading.Lock()

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        with CountingApiClient._lock:
            CountingApiClient.calls += 1
        if _request_timeout is None:
            _request_timeout = (API_CONNECT_TIMEOUT_S, API_READ_TIMEOUT_S)
        return super().call_api(method, url, header_params, body, post_params, _request_timeout)

    @classmethod
    def count_exec(cls) -> None:
        with cls._lock:
            cls.exec_calls += 1


# ---------------------------------------------------------------- connecting


@dataclass(frozen=True)
class Target:
    """Where the kubeconfig (or the pod's service account) points."""

    configuration: k8s.Configuration
    context: str
    cluster_name: str


def resolve_target(kubeconfig: str | None, context: str | None, env: dict[str, str] | None = None) -> Target:
    """Pick the cluster like kubectl does; every failure is a UsageError with one sentence."""
    env = dict(os.environ) if env is None else env
    source = "--kubeconfig"
    path = kubeconfig
    if not path and env.get("KUBECONFIG"):
        path, source = env["KUBECONFIG"], "$KUBECONFIG"
    if not path:
        default = Path(env.get("HOME", "~")).expanduser() / ".kube" / "config"
        if default.is_file():
            path, source = str(default), "~/.kube/config"
    if not path:
        if env.get("KUBERNETES_SERVICE_HOST") and INCLUSTER_TOKEN.is_file():
            if context:
                raise UsageError(f"--context {context} needs a kubeconfig, but netconform runs in-cluster")
            cfg = k8s.Configuration()
            k8s_config.load_incluster_config(client_configuration=cfg)
            return Target(cfg, "in-cluster", "in-cluster")
        raise UsageError(
            "no cluster configured: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config "
            "or run netconform inside a pod"
        )
    files = [p for p in path.split(os.pathsep) if p]
    missing = [p for p in files if not Path(p).is_file()]
    if missing and len(missing) == len(files):
        raise UsageError(f"kubeconfig {missing[0]} (from {source}) does not exist")
    path = os.pathsep.join(p for p in files if p not in missing)
    contexts, current = _read_contexts(files)
    names = list(contexts)
    chosen = context or current
    if not chosen:
        raise UsageError(
            f"kubeconfig {path} has no current-context; pass --context ({', '.join(names) or 'none defined'})"
        )
    if chosen not in contexts:
        raise UsageError(
            f"context {chosen!r} is not in kubeconfig {path}; known contexts: {', '.join(names) or 'none'}"
        )
    cluster_name = contexts[chosen] or chosen
    cfg = k8s.Configuration()
    try:
        k8s_config.load_kube_config(config_file=path, context=chosen, client_configuration=cfg, persist_config=False)
    except (ConfigException, OSError, ValueError) as exc:
        raise UsageError(f"cannot use context {chosen!r} from {path}: {_first_line(exc)}") from None
    return Target(cfg, chosen, cluster_name)


def _read_contexts(files: list[str]) -> tuple[dict[str, str], str | None]:
    """Context name -> cluster name, and the current context, merged like kubectl (first file wins)."""
    contexts: dict[str, str] = {}
    current = None
    for name in files:
        try:
            doc = yaml.safe_load(Path(name).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read kubeconfig {name}: {_first_line(exc)}") from None
        if not isinstance(doc, dict):
            raise UsageError(f"kubeconfig {name} is not a kubeconfig (no mapping at the top)")
        for entry in doc.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name"):
                contexts.setdefault(entry["name"], (entry.get("context") or {}).get("cluster", ""))
        current = current or doc.get("current-context") or None
    return contexts, current


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def make_api_client(cfg: k8s.Configuration) -> CountingApiClient:
    # One quick connect retry: a refused or unroutable API should be reported in seconds.
    cfg.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0)
    return CountingApiClient(cfg)


def server_version(api: CountingApiClient, target: Target) -> str:
    """First call to the API; turns 'cannot reach' into one sentence."""
    try:
        return k8s.VersionApi(api).get_code().git_version
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UsageError(
            f"cannot reach the Kubernetes API at {target.configuration.host} (context {target.context}): "
            f"{_unreachable_reason(reason)}"
        ) from None
    except k8s.ApiException as exc:
        raise UsageError(api_error_sentence(exc, f"read the server version from {target.configuration.host}")) from None


def _unreachable_reason(reason: object) -> str:
    text = str(reason)
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("timed out", f"no answer within {API_CONNECT_TIMEOUT_S:g}s"),
        ("Name or service not known", "unknown host name"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
        ("No route to host", "no route to host"),
    ):
        if needle in text:
            return words
    return text.splitlines()[0][:200]


def list_nodes(api: CountingApiClient, label_selector: str | None = None) -> list[NodeInfo]:
    core = k8s.CoreV1Api(api)
    try:
        items = core.list_node(label_selector=label_selector or "").items
    except k8s.ApiException as exc:
        if exc.status == 400 and label_selector:
            raise UsageError(f"--nodes {label_selector!r} is not a valid label selector") from None
        raise UsageError(api_error_sentence(exc, "list nodes")) from None
    return sorted((NodeInfo.from_api(n) for n in items), key=lambda n: n.name)


def select_nodes(all_nodes: list[NodeInfo], matching: list[str] | None, limit: int | None) -> list[NodeInfo]:
    """Schedulable Ready nodes, optionally only those matching --nodes, first --node-limit by name."""
    chosen = [n for n in all_nodes if n.ready and n.schedulable and (matching is None or n.name in matching)]
    return chosen[:limit] if limit else chosen


def explain_no_nodes(all_nodes: list[NodeInfo], selector: str | None) -> str:
    if not all_nodes:
        return "the cluster has no nodes"
    if selector:
        return f"no schedulable Ready node matches --nodes {selector!r}"
    states = ", ".join(f"{n.name} ({'cordoned' if not n.schedulable else 'NotReady'})" for n in all_nodes[:10])
    return f"no node is both Ready and schedulable: {states}"


# ---------------------------------------------------------------- access check


@dataclass(frozen=True)
class Permission:
    verb: str
    resource: str
    group: str = ""
    subresource: str = ""

    def __str__(self) -> str:
        name = self.resource + (f"/{self.subresource}" if self.subresource else "")
        return f"{self.verb} {name}{'.' + self.group if self.group else ''}"


# Exactly what the suite does; suites/rbac.yaml grants the same (tests/unit/test_cluster_rbac.py keeps them equal).
# Namespaced resources are checked cluster-wide: the run namespace does not exist before the run.
REQUIRED_PERMISSIONS: tuple[Permission, ...] = (
    Permission("list", "nodes"),
    Permission("list", "namespaces"),
    Permission("get", "namespaces"),
    Permission("create", "namespaces"),
    Permission("delete", "namespaces"),
    Permission("create", "daemonsets", "apps"),
    Permission("create", "services"),
    Permission("get", "services"),
    Permission("list", "pods"),
    Permission("create", "pods", subresource="exec"),
    Permission("list", "endpointslices", "discovery.k8s.io"),
    Permission("list", "events"),
)


def missing_permissions(
    api: CountingApiClient, wanted: tuple[Permission, ...] = REQUIRED_PERMISSIONS
) -> list[Permission]:
    """Ask the API (SelfSubjectAccessReview, concurrently) which of `wanted` the caller lacks.

    An API that refuses the review itself is not an answer: then nothing is reported missing and
    the first forbidden call explains itself.
    """
    authz = k8s.AuthorizationV1Api(api)

    def allowed(perm: Permission) -> bool:
        review = k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    verb=perm.verb, resource=perm.resource, group=perm.group, subresource=perm.subresource or None
                )
            )
        )
        try:
            return bool(authz.create_self_subject_access_review(review).status.allowed)
        except k8s.ApiException:
            return True

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(allowed, wanted))
    return [perm for perm, ok in zip(wanted, verdicts, strict=True) if not ok]


# ---------------------------------------------------------------- pytest plugin


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform", "netconform: which cluster and nodes")
    group.addoption(
        "--kubeconfig", metavar="PATH", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    group.addoption("--context", metavar="NAME", help="kubeconfig context (default: the current context)")
    group.addoption("--nodes", metavar="SELECTOR", help="only nodes matching this label selector, e.g. 'pool=blue'")
    group.addoption("--node-limit", metavar="N", type=_positive_int, help="only the first N selected nodes (by name)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be >= 1")
    return value


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def wants_cluster(config: pytest.Config) -> bool:
    """True when the run collects the cluster suite (suites/), so `pytest tests/` never dials a cluster."""
    suites = (config.rootpath / "suites").resolve()
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == suites or suites in path.parents or path in suites.parents:
            return True
    return False


def is_active(config: pytest.Config) -> bool:
    return config.stash.get(_ACTIVE, False)


def run_id(config: pytest.Config) -> str:
    return config.stash[_RUN_ID]


def get_cluster(config: pytest.Config) -> Cluster:
    try:
        return config.stash[_CLUSTER]
    except KeyError:
        raise UsageError("netconform is not connected: run the cluster suite, e.g. `pytest suites/`") from None


def selected_nodes(config: pytest.Config) -> list[NodeInfo]:
    """The node inventory tests are parametrized from (deterministic: sorted by name)."""
    return get_cluster(config).nodes if is_active(config) else []


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if is_controller(config):
        active = wants_cluster(config)
        config.stash[_ACTIVE] = active
        if active:
            config.stash[_RUN_ID] = secrets.token_hex(4)
            _install_sigterm_handler(config)
    else:
        inventory = config.workerinput.get("netconform")  # type: ignore[attr-defined]
        config.stash[_ACTIVE] = inventory is not None
        if inventory:
            config.stash[_RUN_ID] = inventory["run_id"]


def _install_sigterm_handler(config: pytest.Config) -> None:
    """SIGTERM (CI cancel, `timeout`) takes the Ctrl-C path, so the run namespace is still removed."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, previous))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not is_active(config):
        return
    if is_controller(config):
        config.stash[_CLUSTER] = connect(config)
    else:
        config.stash[_CLUSTER] = _cluster_from_workerinput(config)


def connect(config: pytest.Config) -> Cluster:
    """Controller: connect, check access, take the inventory. Raises pytest.UsageError (exit 4, one line)."""
    try:
        target = resolve_target(config.getoption("kubeconfig"), config.getoption("context"))
        api = make_api_client(target.configuration)
        version = server_version(api, target)
        lacking = missing_permissions(api)
        if lacking:
            raise UsageError(
                f"context {target.context} lacks permissions netconform needs: {', '.join(map(str, lacking))} "
                "(apply suites/rbac.yaml and bind it)"
            )
        all_nodes = list_nodes(api)
        selector = config.getoption("nodes")
        matching = [n.name for n in list_nodes(api, selector)] if selector else None
        nodes = select_nodes(all_nodes, matching, config.getoption("node_limit"))
        if not nodes:
            raise UsageError(explain_no_nodes(all_nodes, selector))
    except UsageError as exc:
        raise pytest.UsageError(f"netconform: {exc}") from None
    except API_TRANSPORT_ERRORS as exc:  # answered the version, then went away
        raise pytest.UsageError(f"netconform: {api_error_sentence(exc, 'take the node inventory')}") from None
    return Cluster(
        context=target.context,
        cluster_name=target.cluster_name,
        server=target.configuration.host,
        version=version,
        nodes=nodes,
        all_nodes=all_nodes,
        configuration=target.configuration,
        api_client=api,
    )


def _cluster_from_workerinput(config: pytest.Config) -> Cluster:
    data = config.workerinput["netconform"]  # type: ignore[attr-defined]
    target = resolve_target(
        config.getoption("kubeconfig"), data["context"] if data["context"] != "in-cluster" else None
    )
    all_nodes = [NodeInfo.from_dict(d) for d in data["all_nodes"]]
    selected = set(data["nodes"])
    return Cluster(
        context=target.context,
        cluster_name=target.cluster_name,
        server=target.configuration.host,
        version=data["version"],
        nodes=[n for n in all_nodes if n.name in selected],
        all_nodes=all_nodes,
        configuration=target.configuration,
        api_client=make_api_client(target.configuration),
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand each worker the run id and the controller's inventory (same tests, same order)."""
    config = node.config
    if not is_active(config):
        return
    cluster = get_cluster(config)
    node.workerinput["netconform"] = {
        "run_id": run_id(config),
        "context": cluster.context,
        "version": cluster.version,
        "nodes": [n.name for n in cluster.nodes],
        "all_nodes": [n.to_dict() for n in cluster.all_nodes],
    }


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not is_active(config) or _CLUSTER not in config.stash:
        return []
    c = get_cluster(config)
    nodes = ", ".join(f"{n.name} ({n.internal_ip})" for n in c.nodes)
    return [
        f"netconform: cluster {c.cluster_name} (context {c.context}) at {c.server}, Kubernetes {c.version}, run {run_id(config)}",
        f"netconform: {len(c.nodes)} of {len(c.all_nodes)} nodes selected: {nodes}",
    ]


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Cluster:
    """The connected cluster (selected nodes, clients)."""
    return get_cluster(pytestconfig)
