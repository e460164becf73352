"""Why a node's probe pods never started: the kubelet's newest FailedCreatePodSandBox event for a probe
pod on each node (a CNI that cannot set up the pod's network says so there, with the plugin and path)."""

from __future__ import annotations

from kubernetes import client as k8s

from netconform.errors import API_ERRORS
from netconform.kube.connect import get_json

__all__ = ["MAX_MESSAGE", "sandbox_failures"]

MAX_MESSAGE = 600  # the runtime's message is long; its end names the plugin and the error


def sandbox_failures(api_client: k8s.ApiClient, namespace: str) -> dict[str, str]:
    """node -> the newest FailedCreatePodSandBox message of a probe pod there ({} when unreadable)."""
    try:
        pods = get_json(api_client, f"/api/v1/namespaces/{namespace}/pods")["items"]
        events = get_json(
            api_client, f"/api/v1/namespaces/{namespace}/events", {"fieldSelector": "reason=FailedCreatePodSandBox"}
        )["items"]
    except API_ERRORS:
        return {}
    node_of = {
        str(p["metadata"]["name"]): str(node)
        for p in pods
        if (node := (p.get("spec") or {}).get("nodeName")) and p.get("metadata", {}).get("name")
    }
    newest: dict[str, tuple[str, str]] = {}
    for ev in events:
        obj = ev.get("involvedObject") or {}
        node = node_of.get(str(obj.get("name")))
        if obj.get("kind") != "Pod" or node is None:
            continue
        when = str(
            ev.get("lastTimestamp") or ev.get("eventTime") or (ev.get("metadata") or {}).get("creationTimestamp")
        )
        message = " ".join(str(ev.get("message") or "").split())[-MAX_MESSAGE:]
        if node not in newest or when >= newest[node][0]:
            newest[node] = (when, message)
    return {node: message for node, (_, message) in sorted(newest.items())}
