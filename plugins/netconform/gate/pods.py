"""Which pod is the gate's server or holder on each node, and whether it lived through the window.

A hold is only judged when both of its ends lived on: the same pod (UID) and no container restart
between the baseline and the check. An end that was replaced (new UID: the node was removed and came
back, the pod was deleted or evicted), restarted (node reboot, OOM) or is gone is *expected churn*:
its connections ended with it, which says nothing about the network.
A node cordoned in the window (a drain) is reported, but is no churn by itself: `kubectl drain
--ignore-daemonsets` leaves the gate's DaemonSet pods running, so a connection that broke while both
of its pods lived on broke in the network, drained node or not — exactly what an upgrade of kube-proxy
or the CNI on a drained node can do, and what the gate is for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .holds import ROLE_LABEL

__all__ = ["GatePod", "end_churn", "gate_pods"]


@dataclass(frozen=True)
class GatePod:
    role: str  # server | holder
    node: str
    name: str
    uid: str
    restarts: int = 0
    phase: str = ""
    ip: str = ""
    created: str = ""
    last_exit: str = ""  # the previous container's end, when it restarted

    @property
    def running(self) -> bool:
        return self.phase == "Running"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GatePod:
        return cls(**data)


def _from_api(pod: Any) -> GatePod | None:
    meta, spec, status = pod.metadata, pod.spec, pod.status
    role = (meta.labels or {}).get(ROLE_LABEL) if meta else None
    if not role or not spec or not spec.node_name:
        return None
    restarts, last_exit = 0, ""
    for cs in (status.container_statuses if status else None) or []:
        restarts += cs.restart_count or 0
        term = cs.last_state.terminated if cs.last_state else None
        if term:
            at = term.finished_at.isoformat() if term.finished_at else "?"
            last_exit = f"exit {term.exit_code} ({term.reason or 'no reason'}) at {at}"
    created = meta.creation_timestamp.isoformat() if meta.creation_timestamp else ""
    return GatePod(
        role,
        spec.node_name,
        meta.name or "",
        meta.uid or "",
        restarts,
        (status.phase if status else "") or "",
        (status.pod_ip if status else "") or "",
        created,
        last_exit,
    )


def gate_pods(items: list[Any]) -> dict[tuple[str, str], GatePod]:
    """(role, node) -> the pod there; a terminating pod only when nothing replaced it yet."""
    out: dict[tuple[str, str], GatePod] = {}
    terminating: dict[tuple[str, str], GatePod] = {}
    for pod in items:
        seen = _from_api(pod)
        if seen is None:
            continue
        key = (seen.role, seen.node)
        if pod.metadata.deletion_timestamp:
            terminating[key] = seen
        elif key not in out or seen.created > out[key].created:
            out[key] = seen
    return {**terminating, **out}


def end_churn(role: str, node: str, before: GatePod | None, now: GatePod | None, node_exists: bool) -> str:
    """Why this end did not live through the window, in words; "" when it did."""
    what = f"the {role} on {node}"
    if before is None:
        return f"{what} was not running at the baseline"
    if now is None:
        return f"{what} is gone" + (" (the node left the cluster)" if not node_exists else f" ({before.name})")
    if now.uid != before.uid:
        return f"{what} was replaced ({before.name} -> {now.name}, created {now.created})"
    if now.restarts > before.restarts:
        n = now.restarts - before.restarts
        return f"{what} restarted {n}x" + (f" (last: {now.last_exit})" if now.last_exit else "")
    return ""
