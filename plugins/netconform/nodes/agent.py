"""The node agent fleet: the privileged hostNetwork DaemonSet `nc-agent`, deployed once, lazily.

A green run pays nothing: the first diagnosis creates the DaemonSet in the run namespace (the
namespace's deletion removes it); each node's Ready agent pod is looked up when a node is inspected.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from kubernetes import client as k8s

from netconform.errors import API_ERRORS, API_TRANSPORT_ERRORS
from netconform.kube.connect import make_api_client
from netconform.workload.labels import AGENT_NAME, role_selector
from netconform.workload.manifests import agent_daemonset

from .run import one_line
from .spec import AccessError

__all__ = ["AgentFleet"]


class AgentFleet:
    """Deploys nc-agent once (lazily) and finds its pod per node."""

    def __init__(
        self,
        configuration: k8s.Configuration,
        namespace: str,
        image: str,
        node_names: list[str],
        wait_s: float = 90.0,
    ):
        self.configuration, self.namespace, self.image = configuration, namespace, image
        self.node_names, self.wait_s = list(node_names), wait_s
        self._deployed: str | None = None  # None = not yet; "" = ok; text = why not
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Create the DaemonSet once; AccessError (the same sentence every time) when that failed."""
        with self._lock:
            if self._deployed is None:
                self._deployed = self._deploy()
        if self._deployed:
            raise AccessError(self._deployed)

    def _deploy(self) -> str:
        apps = k8s.AppsV1Api(make_api_client(self.configuration))
        manifest: Any = agent_daemonset(self.namespace, self.image, self.node_names)  # sent as the dict it is
        try:
            apps.create_namespaced_daemon_set(self.namespace, manifest, _request_timeout=15)
        except k8s.ApiException as exc:
            if exc.status != 409:  # 409: another xdist worker created it first
                return (
                    f"cannot create DaemonSet {AGENT_NAME} in {self.namespace}: {exc.status} {exc.reason}"
                    f"{_api_message(exc)}"
                )
        except API_TRANSPORT_ERRORS as exc:
            return f"cannot create DaemonSet {AGENT_NAME} in {self.namespace}: {one_line(exc)}"
        return ""

    def pod_on(self, node: str) -> str:
        """Name of the Ready agent pod on `node`, waiting up to wait_s; AccessError otherwise."""
        self.ensure()
        core = k8s.CoreV1Api(make_api_client(self.configuration))
        deadline = time.monotonic() + self.wait_s
        last = "no agent pod scheduled yet"
        while True:
            try:
                pods = core.list_namespaced_pod(
                    self.namespace,
                    label_selector=role_selector("agent"),
                    field_selector=f"spec.nodeName={node}",
                    _request_timeout=10,
                ).items
            except API_ERRORS as exc:
                raise AccessError(f"cannot list agent pods: {one_line(exc)}") from None
            for p in pods:
                if _ready(p) and p.metadata is not None:
                    return str(p.metadata.name)
                last = _pod_state(p)
            if time.monotonic() > deadline:
                raise AccessError(f"agent pod not ready after {self.wait_s:.0f}s ({last})")
            time.sleep(1)


def _api_message(exc: k8s.ApiException) -> str:
    """The API server's own sentence from an ApiException body (why a 422 was refused), or ''."""
    try:
        msg = json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError, TypeError):
        return ""
    return f" ({msg[:300]})" if msg else ""


def _ready(p: k8s.V1Pod) -> bool:
    meta, status = p.metadata, p.status
    if meta is None or status is None or meta.deletion_timestamp is not None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def _pod_state(p: Any) -> str:
    for cs in p.status.container_statuses or []:
        if cs.state and cs.state.waiting and cs.state.waiting.reason:
            return f"{p.metadata.name}: {cs.state.waiting.reason} {cs.state.waiting.message or ''}".strip()
    return f"{p.metadata.name}: {p.status.phase}"
