"""The gate namespace on the cluster: the few API calls the gate makes (bounded), opening the gate
(servers, Services, one hold pod per ordered node pair and path) and reading the holds back."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s

from netconform.errors import API_ERRORS, UsageError
from netconform.kube.connect import make_api_client, resolve_target
from netconform.kube.inventory import list_nodes, select_nodes

from .exits import EXIT_USAGE, GateError
from .holds import (
    HOLD_PORT,
    NAMESPACE,
    Hold,
    HoldState,
    hold_manifest,
    namespace_manifest,
    parse_hold_log,
    planned_holds,
    server_manifest,
    server_pod_name,
    service_manifest,
)

__all__ = ["CONNECT_TIMEOUT_S", "READY_TIMEOUT_S", "GateNamespace", "open_gate", "read_states"]

READY_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 60.0


class GateNamespace:
    """The namespace `netconform-gate` through the few API calls the gate makes, bounded;
    kubeconfig/context resolved like the suite."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        try:
            target = resolve_target(kubeconfig, context)
        except UsageError as exc:
            raise GateError(str(exc), EXIT_USAGE) from None
        self.api = make_api_client(target.configuration)
        self.core = k8s.CoreV1Api(self.api)
        self.context = target.context

    def exists(self) -> bool:
        try:
            ns = self.core.read_namespace(NAMESPACE, _request_timeout=10)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return False
            raise GateError(f"cannot read namespace {NAMESPACE}: {exc.status} {exc.reason}") from None
        return (ns.status.phase if ns.status else None) != "Terminating"

    def ready_nodes(self) -> list[str]:
        return [n.name for n in select_nodes(list_nodes(self.api), None, None)]

    def create(self, manifest: dict[str, Any]) -> Any:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        body: Any = manifest  # the client sends a dict as it is (typed as its models)
        try:
            if kind == "Namespace":
                return self.core.create_namespace(body, _request_timeout=15)
            if kind == "Service":
                return self.core.create_namespaced_service(NAMESPACE, body, _request_timeout=15)
            return self.core.create_namespaced_pod(NAMESPACE, body, _request_timeout=15)
        except k8s.ApiException as exc:
            raise GateError(f"cannot create {kind.lower()} {name}: {exc.status} {exc.reason}") from None

    def pods(self) -> dict[str, Any]:
        items = self.core.list_namespaced_pod(NAMESPACE, _request_timeout=15).items
        return {p.metadata.name: p for p in items if p.metadata and p.metadata.name}

    def log(self, pod: str) -> str:
        return str(self.core.read_namespaced_pod_log(pod, NAMESPACE, _request_timeout=15) or "")

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
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        done, last = check()
        if done:
            return last
        time.sleep(1)
    raise GateError(f"{what} not done after {timeout_s:.0f}s: {last}")


def open_gate(gate: GateNamespace, nodes: list[str], image: str) -> tuple[list[Hold], set[str]]:
    """Servers and Services first (holds need their addresses), then one hold pod per pair and path."""
    gate.create(namespace_manifest(os.environ.get("USER", "ci") + "@" + os.uname().nodename))
    for n in nodes:
        gate.create(server_manifest(n, image))
    service_ips = {n: gate.create(service_manifest(n)).spec.cluster_ip for n in nodes}

    def servers_running() -> tuple[bool, Any]:
        pods = gate.pods()
        ips = {n: getattr(pods.get(server_pod_name(n)), "status", None) for n in nodes}
        waiting = [n for n, st in ips.items() if st is None or st.phase != "Running" or not st.pod_ip]
        return (
            not waiting,
            {n: st.pod_ip for n, st in ips.items() if st} if not waiting else f"not Running on {waiting}",
        )

    pod_ips = _wait("gate servers Running", servers_running, READY_TIMEOUT_S)
    holds: list[Hold] = []
    for planned in planned_holds(nodes):
        host = pod_ips[planned.dst] if planned.via == "pod" else service_ips[planned.dst]
        h = Hold(planned.src, planned.dst, planned.via, planned.pod, f"{host}:{HOLD_PORT}")
        gate.create(hold_manifest(h, image))
        holds.append(h)

    def connected() -> tuple[bool, Any]:
        states = read_states(gate, holds)
        pending = [h.pod for h in holds if not states[h.pod].established and not states[h.pod].breaks]
        return (not pending, states if not pending else f"{len(pending)} holds neither connected nor broken")

    try:
        states = _wait("hold connections", connected, CONNECT_TIMEOUT_S)
    except GateError:
        states = read_states(gate, holds)  # some paths do not work at the baseline: they are not watched
    return holds, {h.pod for h in holds if states[h.pod].established and not states[h.pod].breaks}


def read_states(gate: GateNamespace, holds: list[Hold]) -> dict[str, HoldState]:
    pods = gate.pods()
    out: dict[str, HoldState] = {}
    for h in holds:
        pod = pods.get(h.pod)
        if pod is None:
            out[h.pod] = HoldState(problem="hold pod is gone")
            continue
        try:
            state = parse_hold_log(gate.log(h.pod))
        except API_ERRORS as exc:  # a log we cannot read is no verdict of survival
            state = HoldState(problem=f"cannot read its log: {str(exc).splitlines()[0][:120]}")
        state.phase = pod.status.phase if pod.status else ""
        out[h.pod] = state
    return out
