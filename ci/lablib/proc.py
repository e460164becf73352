"""Processes the lab starts: each one in the lab's cgroup, its pid on file, stopped by pid only."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from hostlib.proc import BASE_PATH, ClusterError, ComponentExited, Procs, run, wait_for

from . import config

__all__ = [
    "CGROUP_FS",
    "ComponentExited",
    "LabError",
    "cgroup_dirs",
    "cgroup_pids",
    "controllers",
    "hierarchies",
    "ensure_running",
    "kill_cgroup",
    "make_cgroup",
    "pid_of",
    "remove_cgroup",
    "run",
    "start",
    "stop",
    "wait_for",
]

CGROUP_FS = Path("/sys/fs/cgroup")


# The lab's failures are the shared ClusterError: one type whether the shared code or the lab raised it.
LabError = ClusterError
_procs = Procs(config.LOGS, config.PIDS)
pid_of = _procs.pid_of
ensure_running = _procs.ensure_running
stop = _procs.stop


def hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy: the v1 ones and, on a hybrid mount, the v2 one (`unified`)."""
    return sorted(p for p in CGROUP_FS.iterdir() if p.is_dir() and (p / "cgroup.procs").exists())


def controllers() -> list[Path]:
    """Mounted cgroup v1 hierarchies (the lab's nodes use cgroupfs on v1): where the lab makes and joins
    its cgroups. runc also makes each container's cgroup in the v2 one, so cleaning up covers hierarchies()."""
    return [p for p in hierarchies() if p.name != "unified"]


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
    make_cgroup(cgroup)
    full_env = {"PATH": BASE_PATH, "HOME": "/root", **(env or {})}
    return _procs.start(name, argv, full_env, preexec_fn=lambda: _join_cgroup(cgroup))


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
    """Every process in relpath and below, read from the pids hierarchy (all lab processes are there) and
    the v2 one (where runc also puts each container)."""
    found: set[int] = set()
    for root in (_lab_tree(CGROUP_FS / "pids", relpath), _lab_tree(CGROUP_FS / "unified", relpath)):
        if root.is_dir():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):  # a cgroup removed while we read
                    found |= {int(p) for p in procs.read_text().split()}
    return sorted(found)


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


def _lab_tree(ctrl: Path, relpath: str) -> Path:
    """ctrl/relpath, refused unless it is a directory strictly below the hierarchy's root (no `..`, no root)."""
    parts = Path(relpath.strip("/")).parts
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise LabError(f"cgroup {relpath!r} is not a path below a hierarchy's root; the lab touches only its own")
    return ctrl.joinpath(*parts)


def cgroup_dirs(relpath: str) -> list[Path]:
    """relpath's directory in each hierarchy where it exists (the v2 one included)."""
    return [top for ctrl in hierarchies() if (top := _lab_tree(ctrl, relpath)).is_dir()]


def remove_cgroup(relpath: str) -> None:
    """rmdir the cgroup tree in every hierarchy, the v2 one included, deepest first; nothing outside
    relpath. A directory that stays (a process still in it) is left for the caller's leftovers check."""
    for top in cgroup_dirs(relpath):
        # bottom-up walk, never following links: every directory below top, children before parents
        for path in [Path(d) for d, _, _ in os.walk(top, topdown=False, followlinks=False)]:
            for _ in range(50):  # a cgroup whose last process just exited is busy for a moment
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
