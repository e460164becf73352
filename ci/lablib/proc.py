"""Processes the lab starts: each one in the lab's cgroup, its pid on file, stopped by pid only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from . import config

CGROUP_FS = Path("/sys/fs/cgroup")


class LabError(Exception):
    """A failure the operator can act on; its text is one sentence."""


def controllers() -> list[Path]:
    """Mounted cgroup v1 hierarchies (the lab's nodes use cgroupfs on v1)."""
    return sorted(
        p for p in CGROUP_FS.iterdir() if p.is_dir() and p.name != "unified" and (p / "cgroup.procs").exists()
    )


def make_cgroup(relpath: str) -> None:
    """Create relpath in every hierarchy; cpuset needs cpus/mems copied down or runc fails with ENOSPC."""
    for ctrl in controllers():
        path = ctrl
        for part in relpath.strip("/").split("/"):
            parent, path = path, path / part
            if not path.exists():
                path.mkdir()
            if ctrl.name == "cpuset":
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (path / knob).read_text().strip():
                        (path / knob).write_text((parent / knob).read_text())


def _join_cgroup(relpath: str) -> None:
    pid = str(os.getpid())
    for ctrl in controllers():
        (ctrl / relpath / "cgroup.procs").write_text(pid)


def start(name: str, argv: list[str], cgroup: str, env: dict[str, str] | None = None) -> int:
    """Start argv detached, logging to logs/<name>.log, inside cgroup; record its pid."""
    config.LOGS.mkdir(parents=True, exist_ok=True)
    config.PIDS.mkdir(parents=True, exist_ok=True)
    make_cgroup(cgroup)
    full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
    full_env.update(env or {})
    # The child keeps its own copy of the log's descriptor; ours closes once it is started.
    with open(config.LOGS / f"{name}.log", "ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            preexec_fn=lambda: _join_cgroup(cgroup),
        )
    (config.PIDS / f"{name}.pid").write_text(f"{child.pid} {_start_time(child.pid)}\n")
    return child.pid


def _start_time(pid: int) -> str:
    """Start time in clock ticks: tells a live process from a recycled pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def pid_of(name: str) -> int | None:
    """The pid of a component the lab started, if it still runs."""
    try:
        pid_text, started = (config.PIDS / f"{name}.pid").read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    return pid if _start_time(pid) == started else None


class ComponentExited(LabError):
    """A lab component died: waiting for it any longer is pointless."""


def ensure_running(name: str) -> None:
    if pid_of(name) is None:
        raise ComponentExited(f"{name} exited; its log is {config.LOGS / (name + '.log')}")


def stop(name: str, grace: float = 10.0) -> None:
    pid = pid_of(name)
    if pid is not None:
        _kill([pid], grace)
    (config.PIDS / f"{name}.pid").unlink(missing_ok=True)


def _kill(pids: list[int], grace: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def cgroup_pids(relpath: str) -> list[int]:
    """Every process in relpath and below, read from the pids hierarchy (all lab processes are there)."""
    root = CGROUP_FS / "pids" / relpath
    if not root.is_dir():
        return []
    found: list[int] = []
    for procs in root.rglob("cgroup.procs"):
        found += [int(p) for p in procs.read_text().split()]
    return found


def kill_cgroup(relpath: str, grace: float = 10.0) -> None:
    """Stop every process the lab started below relpath (containers included), by pid."""
    for _ in range(5):
        pids = cgroup_pids(relpath)
        if not pids:
            return
        _kill(pids, grace)
        grace = 2.0
    left = cgroup_pids(relpath)
    if left:
        raise LabError(f"processes {left} in cgroup {relpath} did not stop")


def remove_cgroup(relpath: str) -> None:
    """rmdir the cgroup tree in every hierarchy, deepest first."""
    for ctrl in controllers():
        top = ctrl / relpath
        if not top.is_dir():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        top.rmdir()


def run(argv: list[str], timeout: float = 60, check: bool = True, input: str | None = None) -> str:
    """Run a short command; a failure becomes a LabError naming the command."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s") from None
    if check and done.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {(done.stderr or done.stdout).strip()[:500]}")
    return done.stdout


def wait_for(what: str, predicate, timeout: float, interval: float = 0.5, log: str | None = None):
    """Poll predicate until truthy; on timeout a LabError says what was awaited (and where to look)."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            value = predicate()
        except ComponentExited:
            raise
        except Exception as err:  # noqa: BLE001 - a not-yet-ready component raises all kinds of things
            value, last_error = None, str(err)
        if value:
            return value
        if time.monotonic() > deadline:
            where = f"; see {log}" if log else ""
            last = f" (last: {last_error[:300]})" if last_error else ""
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}{last}{where}")
        time.sleep(interval)
