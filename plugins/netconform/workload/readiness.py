"""Waiting, bounded, until the probes are Ready and every Service lists every server; and saying why not.

A pod that is not Ready is named with the reason kubectl would show (image pull with the image,
scheduler message, last exit code, sandbox/CNI event), pods stuck for the same reason together.

Pods, EndpointSlices and events are read as the API's plain JSON (kube.connect.get_json): at 1000
nodes one poll's pod list is 11.5 MB, which took 6-12 s to turn into the client's typed models.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from netconform.errors import API_ERRORS, ProbeSetupError, api_error_sentence
from netconform.kube.connect import get_json
from netconform.kube.inventory import family_of
from netconform.workload.labels import HAIRPIN_SERVICE, HTTP_PORT, POLICY, ROLE_LABEL, SERVICES, SINGLE

__all__ = ["PodRef", "Readiness", "Roles", "not_ready_message", "pod_problem", "roles_for", "wait_ready"]

# kube-proxy applies EndpointSlice changes asynchronously (iptables min-sync-period is 1s by default);
# dialing the moment the slices list every server found nodes still balancing over the old set.
# Callers that cannot see the datapath wait this long; the suite instead waits until every client pod
# sees every Service's endpoints (netconform.dialing.settle) and passes settle_s=0.
KUBE_PROXY_SETTLE_S = 3.0
PROGRESS_EVERY_S = 5.0
POLL_S = 0.5
Progress = Callable[[str], None]
Pod = dict[str, Any]  # a Pod as the API sends it (JSON, camelCase)


@dataclass(frozen=True)
class PodRef:
    name: str
    ip: str
    node: str
    ips: tuple[str, ...] = ()  # every address of the pod (status.podIPs), one per family on dual-stack

    def ip_of(self, family: str) -> str | None:
        """The pod's address of `family` ("ipv4" | "ipv6"), if it has one."""
        return next((ip for ip in self.ips or (self.ip,) if family_of(ip) == family), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PodRef:
        return cls(**{**data, "ips": tuple(data.get("ips", ()))})

    @classmethod
    def of(cls, pod: Pod, node: str) -> PodRef:
        return cls(pod["metadata"]["name"], pod["status"]["podIP"], node, tuple(_pod_ips(pod)))


@dataclass(frozen=True)
class Readiness:
    """The probe pods that became Ready (role -> node -> pod), and the selected nodes whose pods did not
    within the wait, with the reason (the run tests the others; those nodes' tests fail with it)."""

    pods: dict[str, dict[str, PodRef]]
    unusable: dict[str, str]


def _pod_ips(pod: Pod) -> list[str]:
    """Every address of the pod (status.podIPs, else status.podIP)."""
    status = pod.get("status") or {}
    return [p["ip"] for p in status.get("podIPs") or [] if p.get("ip")] or [ip for ip in [status.get("podIP")] if ip]


# role -> on which of the selected nodes it runs: every node, or only the first (the single pod, the
# NetworkPolicy check's allowed client). The policy roles exist only when that check is selected.
Roles = Mapping[str, slice]
PROBE_ROLES: Roles = {"server": slice(None), "client": slice(None), SINGLE["role"]: slice(1)}
POLICY_ROLES: Roles = {POLICY["target_role"]: slice(None), POLICY["client_role"]: slice(1)}
ROLES: Roles = {**PROBE_ROLES, **POLICY_ROLES}


def roles_for(network_policy: bool) -> Roles:
    """The roles a run deploys: the probes, and the NetworkPolicy check's pods when that check runs."""
    return ROLES if network_policy else PROBE_ROLES


def _name(pod: Pod) -> str:
    return str(pod["metadata"]["name"])


def _node(pod: Pod) -> str | None:
    return (pod.get("spec") or {}).get("nodeName")


def _is_ready(pod: Pod) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _deleted(pod: Pod) -> bool:
    return pod["metadata"].get("deletionTimestamp") is not None


def pod_problem(pod: Pod, warnings: dict[str, str]) -> str:
    """Why a probe pod is not Ready, in the words kubectl would show (plus the image or message that matters)."""
    status = pod.get("status") or {}
    where = f"{_name(pod)} on {_node(pod) or 'no node'}"
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return f"{where}: {c.get('reason') or 'Unschedulable'} ({c.get('message') or 'no scheduler message'})"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        reason, message = waiting.get("reason"), waiting.get("message")
        if reason in ("ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName"):
            return f"{where}: {reason} for image {cs.get('image')}" + (f" ({_short(message)})" if message else "")
        if reason == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated")
            tail = (
                f"last exit code {last.get('exitCode')}" + (f" ({last['reason']})" if last.get("reason") else "")
                if last
                else "no exit recorded"
            )
            return f"{where}: CrashLoopBackOff, {tail}, {cs.get('restartCount', 0)} restarts"
        if reason:
            extra = warnings.get(_name(pod)) or message
            return f"{where}: {reason}" + (f" ({_short(extra)})" if extra else "")
        if "running" in state and not cs.get("ready"):
            return f"{where}: running but not Ready (readiness probe on :{HTTP_PORT}/healthz failing)"
    extra = warnings.get(_name(pod))
    return f"{where}: {status.get('phase') or 'Unknown'}" + (f" ({_short(extra)})" if extra else "")


def _short(text: str, limit: int = 240) -> str:
    """One line; long kubelet/runtime messages keep their start and their end, where the cause is."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = limit // 4
    return f"{text[:head]} ... {text[-(limit - head - 5) :]}"


def _when(stamp: str | None) -> float:
    """An API timestamp (RFC 3339, `2026-01-01T10:00:00Z`, with or without microseconds) in seconds; 0 if none."""
    try:
        return dt.datetime.fromisoformat(stamp).timestamp() if stamp else 0.0
    except ValueError:
        return 0.0


def _latest_warnings(api: k8s.ApiClient, namespace: str) -> dict[str, str]:
    """Newest Warning event message per pod (sandbox/CNI failures only show up there)."""
    try:
        events = get_json(api, f"/api/v1/namespaces/{namespace}/events", {"fieldSelector": "type=Warning"})["items"]
    except API_ERRORS:
        return {}
    latest: dict[str, tuple[float, str]] = {}
    for ev in events:
        obj = ev.get("involvedObject") or {}
        name = obj.get("name")
        if obj.get("kind") != "Pod" or not name:
            continue
        key = _when(ev.get("lastTimestamp") or ev.get("eventTime") or ev["metadata"].get("creationTimestamp"))
        if name not in latest or key >= latest[name][0]:
            latest[name] = (key, f"{ev.get('reason')}: {ev.get('message')}")
    return {name: text for name, (_, text) in latest.items()}


def _placement(pods: list[Pod], nodes: list[str]) -> tuple[dict[str, dict[str, Pod]], list[Pod]]:
    """Newest pod per (role, node), and the pods that are not Ready."""
    chosen: dict[str, dict[str, Pod]] = {role: {} for role in ROLES}
    wanted = set(nodes)
    for pod in sorted(pods, key=lambda p: _when(p["metadata"].get("creationTimestamp"))):
        role = (pod["metadata"].get("labels") or {}).get(ROLE_LABEL)
        node = _node(pod)
        if role in chosen and node is not None and node in wanted and not _deleted(pod):
            chosen[role][node] = pod
    not_ready = [p for p in pods if not _deleted(p) and not _is_ready(p)]
    return chosen, not_ready


def not_ready_message(
    pods: list[Pod], nodes: list[str], warnings: dict[str, str], waited_s: float, slices_ok: bool, roles: Roles = ROLES
) -> str:
    chosen, not_ready = _placement(pods, nodes)
    # pods stuck for the same reason are named together, the reason once
    by_reason: dict[str, list[str]] = {}
    for pod in sorted(not_ready, key=_name):
        where, _, reason = pod_problem(pod, warnings).partition(": ")
        by_reason.setdefault(reason, []).append(where)
    problems = [f"{', '.join(wheres)}: {reason}" for reason, wheres in by_reason.items()]
    for role, on in roles.items():
        for node in nodes[on]:
            if node not in chosen[role]:
                problems.append(f"no nc-{role} pod on {node}")
    if not problems and not slices_ok:
        problems.append("the Services have no ready endpoints for every server pod yet (EndpointSlices)")
    return f"probes not Ready after {waited_s:.0f}s: " + "; ".join(problems)


def wait_ready(
    core: k8s.CoreV1Api,
    namespace: str,
    nodes: list[str],
    timeout_s: float,
    progress: Progress | None = None,
    settle_s: float = KUBE_PROXY_SETTLE_S,
    roles: Roles = ROLES,
) -> Readiness:
    """Wait (bounded) until every selected node has a Ready server and client (the first one also the
    single pod; with the NetworkPolicy check, its pods: `roles`) and the Services list them all, then
    `settle_s` more for kube-proxy.

    At the deadline, nodes whose server and client are Ready and listed are tested without the others
    (a node with a broken CNI must not stop the run); with none, ProbeSetupError says why.
    `progress` hears what is still pending every PROGRESS_EVERY_S seconds.
    """
    api = core.api_client
    started = time.monotonic()
    next_word = started + PROGRESS_EVERY_S
    pods: list[Pod] = []
    api_error = None
    covered_since: float | None = None
    while True:
        slices_ok = False
        try:
            pods = get_json(api, f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": ROLE_LABEL})["items"]
            chosen, _ = _placement(pods, nodes)
            all_ready = all(
                node in chosen[role] and _is_ready(chosen[role][node])
                for role, on in roles.items()
                for node in nodes[on]
            )
            if all_ready:
                slices_ok = _endpoints_cover(api, namespace, _backend_ips(chosen, nodes))
            covered_since = (covered_since or time.monotonic()) if slices_ok else None
            if covered_since is not None and time.monotonic() - covered_since >= settle_s:
                return Readiness({role: {n: PodRef.of(p, n) for n, p in chosen[role].items()} for role in chosen}, {})
            api_error = None
        except API_ERRORS as exc:
            # keep polling through a blip of the API; say so if it lasts until the deadline
            api_error = api_error_sentence(exc, f"list the probe pods in {namespace}")
        waited = time.monotonic() - started
        if progress and time.monotonic() >= next_word:
            next_word += PROGRESS_EVERY_S
            progress(_pending(pods, nodes, slices_ok, api_error) + f" ({waited:.0f}s of {timeout_s:.0f}s)")
        if waited >= timeout_s:
            if api_error:
                raise ProbeSetupError(f"probes not Ready after {waited:.0f}s: {api_error}")
            warnings = _latest_warnings(api, namespace)
            partial = _without_unready_nodes(api, namespace, pods, nodes, warnings)
            if partial:
                return partial
            raise ProbeSetupError(not_ready_message(pods, nodes, warnings, waited, slices_ok, roles))
        time.sleep(POLL_S)


def _without_unready_nodes(
    api: k8s.ApiClient, namespace: str, pods: list[Pod], nodes: list[str], warnings: dict[str, str]
) -> Readiness | None:
    """The nodes whose server and client are Ready, if there are any and the Services list exactly
    those servers; the rest by the reason their pods give."""
    chosen, _ = _placement(pods, nodes)
    usable = [n for n in nodes if all(n in chosen[r] and _is_ready(chosen[r][n]) for r in ("server", "client"))]
    if not usable or len(usable) == len(nodes):
        return None
    ready = {role: {n: p for n, p in chosen[role].items() if n in usable and _is_ready(p)} for role in chosen}
    try:
        if not _endpoints_cover(api, namespace, _backend_ips(ready, usable)):
            return None
    except API_ERRORS:
        return None
    unusable = {}
    for node in nodes:
        if node in usable:
            continue
        why = [pod_problem(chosen[r][node], warnings) for r in ("server", "client") if node in chosen[r]]
        why += [f"no nc-{r} pod on {node}" for r in ("server", "client") if node not in chosen[r]]
        unusable[node] = "; ".join(why)
    return Readiness({role: {n: PodRef.of(p, n) for n, p in ready[role].items()} for role in ready}, unusable)


def _pending(pods: list[Pod], nodes: list[str], slices_ok: bool, api_error: str | None) -> str:
    """What the wait still waits for, in one line: `waiting for probes: 2/3 servers Ready, 3/3 clients Ready`."""
    if api_error:
        return f"waiting for probes: {api_error}"
    chosen, _ = _placement(pods, nodes)
    counts = [
        f"{sum(1 for n in nodes if n in chosen[role] and _is_ready(chosen[role][n]))}/{len(nodes)} {role}s Ready"
        for role in ("server", "client")
    ]
    if nodes and not (nodes[0] in chosen[SINGLE["role"]] and _is_ready(chosen[SINGLE["role"]][nodes[0]])):
        counts.append(f"{SINGLE['daemonset']} on {nodes[0]} not Ready")
    return "waiting for probes: " + ", ".join(counts) + ("" if slices_ok else ", Services not yet listing every server")


def _backend_ips(chosen: dict[str, dict[str, Pod]], nodes: list[str]) -> dict[str, set[str]]:
    """Service name -> every address of the pods it must list (each family has its own EndpointSlice)."""

    def ips(role: str) -> set[str]:
        return {ip for pod in chosen[role].values() for ip in _pod_ips(pod)}

    want = {name: ips("server") for name in SERVICES.values()}
    want[HAIRPIN_SERVICE] = ips("client")
    want[SINGLE["service"]] = ips(SINGLE["role"])
    return want


def _endpoints_cover(api: k8s.ApiClient, namespace: str, want: dict[str, set[str]]) -> bool:
    """Every Service lists every pod it selects as a ready endpoint (else early dials race kube-proxy)."""
    slices = get_json(api, f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices")["items"]
    ready: dict[str, set[str]] = {name: set() for name in want}
    for s in slices:
        svc = (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
        if svc not in ready:
            continue
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is not False:
                ready[svc].update(ep.get("addresses") or [])
    return all(want[name] <= ips for name, ips in ready.items())
