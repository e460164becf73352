"""The run namespace's lifecycle: who owns it, when a leftover may be swept, deleting it."""

from __future__ import annotations

import os
import re
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
    namespace_name,
)

__all__ = [
    "NAMESPACE_GONE_WAIT_S",
    "delete_namespace",
    "not_ours",
    "owner_alive",
    "owner_token",
    "stale_reason",
    "sweep",
]

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


# A run id is what session.py makes (8 hex digits); tests and older releases used other short [a-z0-9] ids.
_RUN_ID = re.compile(r"[a-z0-9]{1,40}")


def not_ours(ns: k8s.V1Namespace) -> str | None:
    """Why a namespace that carries netconform's label is not a netconform run namespace, or None.

    The label alone proves nothing (anyone can set it): a run namespace is named after its run id
    and carries the creation time and owner a run writes."""
    meta = ns.metadata or k8s.V1ObjectMeta()
    labels, annotations = meta.labels or {}, meta.annotations or {}
    run = labels.get(RUN_LABEL, "")
    if not _RUN_ID.fullmatch(run) or meta.name != namespace_name(run):
        return f"not named {namespace_name('<run id>')} after its {RUN_LABEL} label"
    if CREATED_ANNOTATION not in annotations or OWNER_ANNOTATION not in annotations:
        return f"no {CREATED_ANNOTATION} and {OWNER_ANNOTATION} annotations"
    return None


def stale_reason(
    ns: k8s.V1Namespace, own_run: str, max_age_s: float, now: float, here: str | None = None
) -> str | None:
    """Why a run namespace is a dead run's leftover to remove, or None to leave it alone.

    Liveness comes before age: a run on this machine whose pytest process lives is never swept,
    however old; one whose process is gone is swept at once. A run of another machine (its
    liveness unknown here) is swept only past `max_age_s`. A kept run (--keep) is never swept."""
    meta = ns.metadata or k8s.V1ObjectMeta()
    labels, annotations = meta.labels or {}, meta.annotations or {}
    if labels.get(RUN_LABEL) == own_run or (ns.status and ns.status.phase == "Terminating"):
        return None
    if annotations.get(KEEP_ANNOTATION) == "true":
        return None
    alive = owner_alive(annotations.get(OWNER_ANNOTATION, ""), here)
    if alive is True:
        return None
    if alive is False:
        return "its pytest process is gone"
    try:
        created = float(annotations.get(CREATED_ANNOTATION, ""))
    except ValueError:
        created = meta.creation_timestamp.timestamp() if meta.creation_timestamp else now
    age = now - created
    if age > max_age_s:
        return f"created {_age_words(age)} ago by {_owner_words(annotations.get(OWNER_ANNOTATION, ''))}"
    return None


def _owner_words(owner: str) -> str:
    host = owner.rsplit("/", 2)[0] if owner.count("/") >= 2 else ""
    return f"a run on {host}" if host else "a run of unknown origin"


def _age_words(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.0f}h"
    if seconds >= 120:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


def sweep(core: k8s.CoreV1Api, own_run: str, max_age_s: float) -> list[str]:
    """Delete dead runs' namespaces; one line per namespace removed, left alone for a reason worth
    saying (kept, not ours by its name), or still terminating."""
    found = core.list_namespace(label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}").items
    said = []
    now = time.time()
    for ns in found:
        name = (ns.metadata and ns.metadata.name) or ""
        labels = (ns.metadata and ns.metadata.labels) or {}
        annotations = (ns.metadata and ns.metadata.annotations) or {}
        if labels.get(RUN_LABEL) == own_run:
            continue
        foreign = not_ours(ns)
        if foreign is not None:
            said.append(f"left namespace {name} alone: it carries {MANAGED_BY_LABEL}={MANAGED_BY} but is {foreign}")
            continue
        if ns.status and ns.status.phase == "Terminating":
            said.append(f"namespace {name} of an earlier run is still terminating")
            continue
        why = stale_reason(ns, own_run, max_age_s, now)
        if why is None:
            if annotations.get(KEEP_ANNOTATION) == "true":
                said.append(f"left kept namespace {name} in place (--keep; remove it: kubectl delete namespace {name})")
            continue
        try:
            core.delete_namespace(name)
        except API_ERRORS as exc:
            if getattr(exc, "status", None) != 404:
                said.append(f"could not remove leftover namespace {name}: {api_error_sentence(exc, 'delete it')}")
            continue
        said.append(f"removed leftover namespace {name} ({why})")
    return said


def delete_namespace(
    core: k8s.CoreV1Api, name: str, wait_s: float = NAMESPACE_GONE_WAIT_S, issued_at: float | None = None
) -> str | None:
    """Delete the run namespace (foreground propagation) and, when wait_s > 0, wait (bounded) until it is gone.

    Idempotent; returns what to tell the user. `issued_at`: when (time.monotonic()) this process already
    issued the delete (on SIGTERM): the time is counted from then, and a namespace already gone is said.
    """
    started = time.monotonic() if issued_at is None else issued_at
    try:
        core.delete_namespace(name, grace_period_seconds=0, propagation_policy="Foreground")
    except API_ERRORS as exc:
        if getattr(exc, "status", None) == 404:
            return None if issued_at is None else f"removed namespace {name} ({time.monotonic() - started:.1f}s)"
        if getattr(exc, "status", None) != 409:  # 409: already being deleted (e.g. on SIGTERM): wait for it
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
