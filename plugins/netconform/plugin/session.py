"""Which cluster, which nodes, which run: options, connection, xdist hand-over, the `cluster` fixture.

The controller (the only process without xdist's `workerinput`) connects, checks access, lists the
nodes and makes the run id; xdist workers receive run id and node inventory through `workerinput`,
so every worker collects the same tests in the same order and none of them lists nodes again.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client as k8s

from netconform.errors import API_TRANSPORT_ERRORS, UsageError, api_error_sentence, server_url
from netconform.installed import names_suites, suites_dir
from netconform.kube.access import Permission, missing_permissions
from netconform.kube.connect import make_api_client, resolve_target, server_version
from netconform.kube.inventory import (
    NodeInfo,
    explain_no_nodes,
    left_out,
    left_out_lines,
    list_nodes,
    ownership_of,
    select_nodes,
)
from netconform.plugin.options import positive_int
from netconform.plugin.permissions import INSPECT_PERMISSIONS, RUN_PERMISSIONS

_RUN_ID = pytest.StashKey[str]()
_CLUSTER = pytest.StashKey["Cluster"]()
_ACTIVE = pytest.StashKey[bool]()
_ON_SIGTERM = pytest.StashKey[list[Callable[[], object]]]()


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
    api_client: k8s.ApiClient
    # read-only permissions (ClusterRole netconform-inspect) the caller lacks: said once, nothing read
    cannot_inspect: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # node -> why the run does not test it

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

    def permitted(self, perm: Permission) -> bool:
        """False for a read-only permission the preflight found missing (nothing is then read)."""
        return str(perm) not in self.cannot_inspect

    def owner_of(self, ip: str) -> str | None:
        """Which node an address belongs to, in words, or None."""
        return ownership_of(ip, self.all_nodes)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform", "netconform: which cluster and nodes")
    group.addoption(
        "--kubeconfig", metavar="PATH", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    group.addoption("--context", metavar="NAME", help="kubeconfig context (default: the current context)")
    group.addoption(
        "--node-selector",
        "--nodes",
        dest="node_selector",
        metavar="SELECTOR",
        help="only nodes matching this label selector, e.g. 'pool=blue' (--nodes is the old name)",
    )
    group.addoption("--node-limit", metavar="N", type=positive_int, help="only the first N selected nodes (by name)")


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def wants_cluster(config: pytest.Config) -> bool:
    """True when the run collects the cluster suite (by path or `--pyargs netconform.suites`), so
    `pytest tests/` never dials a cluster and no way of running the suites skips its way to green."""
    return names_suites(config.args, bool(config.option.pyargs), config.invocation_params.dir, suites_dir())


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


def _workerinput(config: pytest.Config) -> dict[str, Any]:
    data: dict[str, Any] = getattr(config, "workerinput", {})
    return data


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if is_controller(config):
        active = wants_cluster(config)
        config.stash[_ACTIVE] = active
        if active:
            config.stash[_RUN_ID] = secrets.token_hex(4)
            _install_sigterm_handler(config)
    else:
        inventory = _workerinput(config).get("netconform")
        config.stash[_ACTIVE] = inventory is not None
        if inventory:
            config.stash[_RUN_ID] = inventory["run_id"]


def _install_sigterm_handler(config: pytest.Config) -> None:
    """SIGTERM (CI cancel, `timeout`) takes the Ctrl-C path, so the run namespace is still removed; what
    was registered with `on_sigterm` (the namespace delete) runs first, before xdist's workers wind down
    (which took 10 s and dozens of API calls with -n 2 before the delete went out)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        run_sigterm_actions(config)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    config.add_cleanup(restore)


def on_sigterm(config: pytest.Config, action: Callable[[], object]) -> None:
    """Run `action` first thing on SIGTERM (once; it must be quick and bounded)."""
    config.stash.setdefault(_ON_SIGTERM, []).append(action)


def run_sigterm_actions(config: pytest.Config) -> None:
    actions, config.stash[_ON_SIGTERM] = config.stash.get(_ON_SIGTERM, []), []
    for action in actions:
        # boundary: cleanup on the way out must not stop the Ctrl-C path; sessionfinish tries again
        with contextlib.suppress(Exception):
            action()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not is_active(config):
        return
    config.stash[_CLUSTER] = connect(config) if is_controller(config) else _cluster_from_workerinput(config)


def connect(config: pytest.Config) -> Cluster:
    """Controller: connect, check access, take the inventory. Raises pytest.UsageError (exit 4, one line)."""
    try:
        target = resolve_target(config.getoption("kubeconfig"), config.getoption("context"))
        api = make_api_client(target.configuration)
        version = server_version(api, target)
        lacking = missing_permissions(api, RUN_PERMISSIONS + INSPECT_PERMISSIONS)
        required = [p for p in lacking if p in RUN_PERMISSIONS]
        if required:
            raise UsageError(
                f"context {target.context} lacks permissions netconform needs: {', '.join(map(str, required))} "
                "(apply suites/rbac.yaml, or `netconform rbac`, and bind ClusterRole netconform)"
            )
        all_nodes = list_nodes(api)
        selector = config.getoption("node_selector")
        matching = [n.name for n in list_nodes(api, selector)] if selector else None
        limit = config.getoption("node_limit")
        nodes = select_nodes(all_nodes, matching, limit)
        if not nodes:
            raise UsageError(explain_no_nodes(all_nodes, selector))
    except UsageError as exc:
        raise pytest.UsageError(f"netconform: {exc}") from None
    except API_TRANSPORT_ERRORS as exc:  # answered the version, then went away
        raise pytest.UsageError(f"netconform: {api_error_sentence(exc, 'take the node inventory')}") from None
    return Cluster(
        context=target.context,
        cluster_name=target.cluster_name,
        server=server_url(target.configuration.host),
        version=version,
        nodes=nodes,
        all_nodes=all_nodes,
        configuration=target.configuration,
        api_client=api,
        cannot_inspect=[str(p) for p in lacking],
        left_out=left_out(all_nodes, nodes, selector, matching, limit),
    )


def _cluster_from_workerinput(config: pytest.Config) -> Cluster:
    data = _workerinput(config)["netconform"]
    target = resolve_target(
        config.getoption("kubeconfig"), data["context"] if data["context"] != "in-cluster" else None
    )
    all_nodes = [NodeInfo.from_dict(d) for d in data["all_nodes"]]
    selected = set(data["nodes"])
    return Cluster(
        context=target.context,
        cluster_name=target.cluster_name,
        server=server_url(target.configuration.host),
        version=data["version"],
        nodes=[n for n in all_nodes if n.name in selected],
        all_nodes=all_nodes,
        configuration=target.configuration,
        api_client=make_api_client(target.configuration),
        cannot_inspect=list(data.get("cannot_inspect", [])),
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
        "cannot_inspect": cluster.cannot_inspect,
    }


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not is_active(config) or _CLUSTER not in config.stash:
        return []
    c = get_cluster(config)
    nodes = ", ".join(f"{n.name} ({n.internal_ip})" for n in c.nodes)
    return [
        f"netconform: cluster {c.cluster_name} (context {c.context}) at {c.server}, Kubernetes {c.version}, run {run_id(config)}",
        f"netconform: {len(c.nodes)} of {len(c.all_nodes)} nodes selected: {nodes}",
        *(f"netconform: left out {line}" for line in left_out_lines(c.left_out)),
    ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Said once, at the end where -q shows it too: what the run was not permitted to read."""
    if is_controller(config) and is_active(config) and _CLUSTER in config.stash:
        missing = get_cluster(config).cannot_inspect
        if missing:
            terminalreporter.write_line(
                f"netconform: not permitted to read {', '.join(missing)} (ClusterRole netconform-inspect): "
                "the report leaves CNI and kube-proxy mode unnamed; the checks ran as usual"
            )


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Cluster:
    """The connected cluster (selected nodes, clients)."""
    return get_cluster(pytestconfig)
