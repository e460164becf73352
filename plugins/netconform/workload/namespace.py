"""The run namespace's lifecycle: who owns it, when a leftover may be swept, deleting it."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from kubernetes import client as k8s

from netconform.errors import API_ERRORS, api_error_sentence
from netconform.workload.labels import (
    CREATED_ANNOTATION,
    KEEP_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_ANNOTATION,
    RUN_LABEL,
)

__all__ = ["NAMESPACE_GONE_WAIT_S", "delete_namespace", "owner_alive", "owner_token", "stale_reason", "sweep"]

NAMESPACE_GONE_WAIT_S = 60.0


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


def stale_reason(
    ns: k8s.V1Namespace, own_run: str, max_age_s: float, now: float, here: str | None = None
) -> str | None:
    """Why a managed namespace is a leftover to remove, or None to leave it alone."""
    meta = ns.metadata or k8s.V1ObjectMeta()
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
    """Delete leftover run namespaces; one line per namespace removed (or still terminating)."""
    found = core.list_namespace(label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}").items
    said = []
    now = time.time()
    for ns in found:
        name = (ns.metadata and ns.metadata.name) or ""
        labels = (ns.metadata and ns.metadata.labels) or {}
        if ns.status and ns.status.phase == "Terminating" and labels.get(RUN_LABEL) != own_run:
            said.append(f"namespace {name} of an earlier run is still terminating")
            continue
        why = stale_reason(ns, own_run, max_age_s, now)
        if why is None:
            continue
        try:
            core.delete_namespace(name)
        except API_ERRORS as exc:
            if getattr(exc, "status", None) != 404:
                said.append(f"could not remove leftover namespace {name}: {api_error_sentence(exc, 'delete it')}")
            continue
        said.append(f"removed leftover namespace {name} ({why})")
    return said


def delete_namespace(core: k8s.CoreV1Api, name: str, wait_s: float = NAMESPACE_GONE_WAIT_S) -> str | None:
    """Delete the run namespace (foreground propagation) and, when wait_s > 0, wait (bounded) until it is gone.

    Idempotent; returns what to tell the user.
    """
    started = time.monotonic()
    try:
        core.delete_namespace(name, grace_period_seconds=0, propagation_policy="Foreground")
    except API_ERRORS as exc:
        if getattr(exc, "status", None) == 404:
            return None
        return api_error_sentence(exc, f"delete namespace {name}") + "; the next run sweeps it"
    if wait_s <= 0:
        return f"deleting namespace {name} (not waiting; the next run reports it if it stays)"
    while time.monotonic() - started < wait_s:
        try:
            core.read_namespace(name)
        except API_ERRORS as exc:
            if getattr(exc, "status", None) == 404:
                return f"removed namespace {name} ({time.monotonic() - started:.1f}s)"
            return api_error_sentence(exc, f"check that namespace {name} is gone")
        time.sleep(0.5)
    return f"namespace {name} is still terminating after {wait_s:.0f}s; it will finish on its own (or be swept)"
