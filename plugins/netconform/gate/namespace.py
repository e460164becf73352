"""The gate namespace on the cluster: the few API calls the gate makes (bounded), the permissions they
need (checked first), opening the gate (two DaemonSets, a Service per node, the plan) and reading it back."""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubernetes import client as k8s

from netconform.errors import API_ERRORS, UsageError, api_error_sentence, error_text, server_url
from netconform.kube.access import Permission, missing_permissions
from netconform.kube.connect import make_api_client, resolve_target
from netconform.kube.inventory import NodeInfo, explain_no_nodes, list_nodes, select_nodes

from . import prog
from .exits import EXIT_CANNOT_RUN, EXIT_USAGE, GateError
from .holds import (
    HOLD_PORT,
    NAMESPACE,
    NODE_LABEL,
    Hold,
    HoldState,
    holder_daemonset,
    namespace_manifest,
    parse_holder_log,
    plan_configmap,
    server_daemonset,
    service_manifest,
)
from .pods import GatePod, gate_pods
from .state import Cluster

__all__ = [
    "CONNECT_TIMEOUT_S",
    "PERMISSIONS",
    "READY_TIMEOUT_S",
    "GateNamespace",
    "OpenGate",
    "open_gate",
    "read_states",
]

READY_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 60.0
PROGRESS_EVERY_S = 5.0
LOG_READERS = 8  # holder logs read at once

# Exactly what the gate itself does (ClusterRole netconform-gate in suites/rbac.yaml; the plugin's
# GATE_PERMISSIONS lists the same, tests/unit/reporting/test_gate.py keeps the three equal). The suite
# it runs checks its own role (netconform) itself.
PERMISSIONS: tuple[Permission, ...] = (
    Permission("get", "namespaces"),  # is the gate open
    Permission("create", "namespaces"),  # baseline opens it
    Permission("delete", "namespaces"),  # close
    Permission("list", "nodes"),  # the --node-selector/--node-limit selection; which nodes left
    Permission("create", "daemonsets", "apps"),  # gate-server, gate-holder
    Permission("create", "configmaps"),  # gate-plan: each holder's targets
    Permission("create", "services"),  # a ClusterIP per destination node
    Permission("list", "pods"),  # servers' IPs, holders' pods, UIDs and restarts (churn)
    Permission("patch", "pods"),  # label each server pod with its node (its Service selects it)
    Permission("get", "pods", subresource="log"),  # what each holder saw: connects, breaks
    Permission("list", "events"),  # which nodes were cordoned (drained) in the window
)


class GateNamespace:
    """The namespace `netconform-gate` through the few API calls the gate makes, bounded;
    kubeconfig/context resolved like the suite."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        try:
            target = resolve_target(kubeconfig, context)
        except UsageError as exc:
            raise GateError(str(exc), EXIT_USAGE) from None
        self.configuration = target.configuration
        self.context = target.context
        self.reconnect()

    def reconnect(self) -> None:
        """A fresh client: after the suite's run of a minute or more the kept-alive connections of the
        old one may be gone (the API server closes idle ones; a write to one fails with a broken pipe)."""
        self.api = make_api_client(self.configuration)
        self.core = k8s.CoreV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)

    def preflight(self, wanted: tuple[Permission, ...] = PERMISSIONS) -> None:
        """Every permission of PERMISSIONS (or `wanted`), before anything runs; one sentence naming what is missing."""
        try:
            missing = missing_permissions(self.api, wanted)
        except API_ERRORS as exc:
            raise GateError(api_error_sentence(exc, "ask the API which permissions the gate has")) from None
        if missing:
            raise GateError(
                f"the gate cannot run: missing permission{'s' if len(missing) > 1 else ''} "
                f"{', '.join(str(p) for p in missing)} (grant ClusterRole netconform-gate from suites/rbac.yaml)",
                EXIT_CANNOT_RUN,
            )

    def cluster(self) -> Cluster:
        """Which cluster this is: its API server (no userinfo) and the kube-system namespace's UID."""
        try:
            ns = self.core.read_namespace("kube-system", _request_timeout=10)
        except API_ERRORS as exc:
            raise GateError(api_error_sentence(exc, "read namespace kube-system (which cluster this is)")) from None
        uid = ns.metadata.uid if ns.metadata else None
        if not uid:
            raise GateError("the API gave namespace kube-system no UID: cannot tell which cluster this is")
        return Cluster(server_url(self.configuration.host), str(uid))

    def exists(self) -> bool:
        try:
            ns = self.core.read_namespace(NAMESPACE, _request_timeout=10)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return False
            raise GateError(f"cannot read namespace {NAMESPACE}: {exc.status} {exc.reason}") from None
        return (ns.status.phase if ns.status else None) != "Terminating"

    def nodes(self, selector: str | None, limit: int | None) -> tuple[list[NodeInfo], list[NodeInfo]]:
        """(selected Ready schedulable nodes, every node), selected like the suite's --node-selector/--node-limit."""
        try:
            all_nodes = list_nodes(self.api)
            matching = [n.name for n in list_nodes(self.api, selector)] if selector else None
        except UsageError as exc:
            raise GateError(str(exc), EXIT_USAGE) from None
        chosen = select_nodes(all_nodes, matching, limit)
        if not chosen:
            raise GateError(explain_no_nodes(all_nodes, selector), EXIT_USAGE)
        return chosen, all_nodes

    def node_names(self) -> set[str]:
        try:
            return {n.name for n in list_nodes(self.api)}
        except UsageError as exc:
            raise GateError(str(exc)) from None

    def create(self, manifest: dict[str, Any]) -> Any:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        body: Any = manifest  # the client sends a dict as it is (typed as its models)
        try:
            if kind == "Namespace":
                return self.core.create_namespace(body, _request_timeout=15)
            if kind == "Service":
                return self.core.create_namespaced_service(NAMESPACE, body, _request_timeout=15)
            if kind == "ConfigMap":
                return self.core.create_namespaced_config_map(NAMESPACE, body, _request_timeout=15)
            if kind == "DaemonSet":
                return self.apps.create_namespaced_daemon_set(NAMESPACE, body, _request_timeout=15)
        except k8s.ApiException as exc:
            raise GateError(f"cannot create {kind.lower()} {name}: {exc.status} {exc.reason}") from None
        raise ValueError(f"the gate creates no {kind}")

    def pod_items(self) -> list[Any]:
        return list(self.core.list_namespaced_pod(NAMESPACE, _request_timeout=15).items)

    def pods(self) -> dict[tuple[str, str], GatePod]:
        """(role, node) -> the gate's pod there."""
        return gate_pods(self.pod_items())

    def label_server(self, pod: str, node: str) -> None:
        body = {"metadata": {"labels": {NODE_LABEL: node}}}
        try:
            self.core.patch_namespaced_pod(pod, NAMESPACE, body, _request_timeout=15)
        except k8s.ApiException as exc:
            raise GateError(f"cannot label server pod {pod}: {exc.status} {exc.reason}") from None

    def log(self, pod: str) -> str:
        return str(self.core.read_namespaced_pod_log(pod, NAMESPACE, _request_timeout=30) or "")

    def cordoned_since(self, since: float, nodes: list[str]) -> dict[str, str]:
        """node -> when it was cordoned after `since` (the kubelet's NodeNotSchedulable events; they live
        an hour by default, so an older drain is not seen) or that it is cordoned now."""
        out: dict[str, str] = {}
        try:
            events = self.core.list_event_for_all_namespaces(
                field_selector="involvedObject.kind=Node,reason=NodeNotSchedulable", _request_timeout=15
            ).items
        except API_ERRORS:
            events = []  # context for the summary only
        for ev in events:
            node = ev.involved_object.name if ev.involved_object else ""
            when: datetime | None = ev.last_timestamp or ev.event_time or ev.first_timestamp
            if node in nodes and when and when.timestamp() >= since - 1:
                out[node] = f"cordoned at {when.isoformat()} (NodeNotSchedulable)"
        try:
            for n in list_nodes(self.api):
                if n.name in nodes and not n.schedulable:
                    out[n.name] = out.get(n.name, "") + ("; " if n.name in out else "") + "still cordoned"
        except UsageError:
            pass
        return out

    def delete(self, wait_s: float = 90.0) -> str:
        try:
            self.core.delete_namespace(NAMESPACE, grace_period_seconds=0, _request_timeout=15)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return f"namespace {NAMESPACE} was not there"
            raise GateError(f"cannot delete namespace {NAMESPACE}: {exc.status} {exc.reason}") from None
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                self.core.read_namespace(NAMESPACE, _request_timeout=10)
            except k8s.ApiException as exc:
                if exc.status == 404:
                    return f"removed namespace {NAMESPACE}"
            time.sleep(1)
        return f"namespace {NAMESPACE} still terminating after {wait_s:.0f}s; it finishes on its own"


def _wait(what: str, check: Callable[[], tuple[bool, Any]], timeout_s: float) -> Any:
    """Poll `check` every second until done, bounded; say what is still pending every few seconds."""
    start = time.monotonic()
    deadline, said = start + timeout_s, start
    last = None
    while time.monotonic() < deadline:
        done, last = check()
        if done:
            return last
        if time.monotonic() - said >= PROGRESS_EVERY_S:
            said = time.monotonic()
            print(f"{prog.name}: waiting for {what} ({said - start:.0f}s of {timeout_s:.0f}s): {last}", flush=True)
        time.sleep(1)
    raise GateError(f"{what} not done after {timeout_s:.0f}s: {last}")


def _host_port(ip: str) -> str:
    return f"[{ip}]:{HOLD_PORT}" if ":" in ip else f"{ip}:{HOLD_PORT}"  # an IPv6-first cluster's addresses


def _pending(pods: dict[tuple[str, str], GatePod], role: str, nodes: list[str]) -> list[str]:
    out = []
    for n in nodes:
        p = pods.get((role, n))
        if p is None or not p.running or not p.ip:
            out.append(f"{n} ({p.phase if p else 'no pod yet'})")
    return out


class OpenGate:
    """What baseline leaves behind: the holds with their targets, which were up, the pods at the time."""

    def __init__(self, holds: list[Hold], states: dict[str, HoldState], pods: dict[tuple[str, str], GatePod]) -> None:
        self.holds = holds
        self.states = states
        self.pods = pods

    @property
    def established(self) -> set[str]:
        return {h.key for h in self.holds if self.states.get(h.key, HoldState()).up}

    @property
    def breaks(self) -> dict[str, int]:
        return {h.key: len(self.states.get(h.key, HoldState()).breaks) for h in self.holds}


def open_gate(gate: GateNamespace, nodes: list[str], holds: list[Hold], image: str) -> OpenGate:
    """Servers and their Services first (the plan needs their addresses), then the plan and the holders."""
    gate.create(namespace_manifest(os.environ.get("USER", "ci") + "@" + os.uname().nodename))
    gate.create(server_daemonset(nodes, image))
    destinations = sorted({h.dst for h in holds})
    service_ips = {n: gate.create(service_manifest(n)).spec.cluster_ip for n in destinations}

    def servers_running() -> tuple[bool, Any]:
        pods = gate.pods()
        waiting = _pending(pods, "server", nodes)
        return (not waiting, pods if not waiting else f"server pods not Running on {', '.join(waiting)}")

    pods = _wait(f"{len(nodes)} gate-server pods Running", servers_running, READY_TIMEOUT_S)
    for n in nodes:
        gate.label_server(pods[("server", n)].name, n)
    placed = [
        Hold(h.src, h.dst, h.via, _host_port(pods[("server", h.dst)].ip if h.via == "pod" else service_ips[h.dst]))
        for h in holds
    ]
    gate.create(plan_configmap(nodes, placed))
    gate.create(holder_daemonset(nodes, image))

    def holders_running() -> tuple[bool, Any]:
        pods = gate.pods()
        waiting = _pending(pods, "holder", nodes)
        return (not waiting, pods if not waiting else f"holder pods not Running on {', '.join(waiting)}")

    pods = _wait(f"{len(nodes)} gate-holder pods Running", holders_running, READY_TIMEOUT_S)

    def connected() -> tuple[bool, Any]:
        states = read_states(gate, placed, pods)
        down = [h for h in placed if not states[h.key].up]
        return (not down, states if not down else f"{len(down)} of {len(placed)} not connected, e.g. {down[0].label}")

    try:
        states = _wait(f"{len(placed)} long-lived connections", connected, CONNECT_TIMEOUT_S)
    except GateError:
        states = read_states(gate, placed, pods)  # some paths do not work at the baseline: they are not watched
    return OpenGate(placed, states, gate.pods())


def read_states(gate: GateNamespace, holds: list[Hold], pods: dict[tuple[str, str], GatePod]) -> dict[str, HoldState]:
    """Hold.key -> what its holder's log says (one log read per holder pod, a few at once)."""
    sources = sorted({h.src for h in holds})

    def read(src: str) -> dict[str, HoldState] | str:
        holder = pods.get(("holder", src))
        if holder is None:
            return f"no holder pod on {src}"
        try:
            return parse_holder_log(gate.log(holder.name))
        except API_ERRORS as exc:  # a log we cannot read is no verdict of survival
            return f"cannot read the log of {holder.name}: {error_text(exc, 120)}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=LOG_READERS) as pool:
        logs = dict(zip(sources, pool.map(read, sources), strict=True))
    out: dict[str, HoldState] = {}
    for h in holds:
        got = logs[h.src]
        out[h.key] = HoldState(problem=got) if isinstance(got, str) else got.get(h.id, HoldState())
    return out
