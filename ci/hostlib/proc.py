"""Processes a local cluster starts: detached with a log, pid on file, stopped by that pid only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

T = TypeVar("T")

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ClusterError(Exception):
    """A failure the operator can act on; its text is one sentence."""


class ComponentExited(ClusterError):
    """A component died: waiting for it any longer is pointless."""


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): [state, ppid, ...]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def start_time(pid: int) -> str:
    """Start time in clock ticks: tells a live process from a recycled pid."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


class Procs:
    """The components one cluster started: logs/<name>.log and pids/<name>.pid (pid and start time)."""

    def __init__(self, logs: Path, pids: Path) -> None:
        self.logs = logs
        self.pids = pids

    def log_of(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        cwd: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> int:
        """Start argv in its own session, logging to logs/<name>.log; record pid and start time."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        # The child keeps its own copy of the log's descriptor; ours closes once it is started.
        with open(self.log_of(name), "ab") as log:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec_fn,
            )
        (self.pids / f"{name}.pid").write_text(f"{child.pid} {start_time(child.pid)}\n")
        return child.pid

    def pid_of(self, name: str) -> int | None:
        """The pid of a component this cluster started, if that very process still runs."""
        try:
            pid_text, started = (self.pids / f"{name}.pid").read_text().split()
        except (OSError, ValueError):
            return None
        pid = int(pid_text)
        fields = _stat_fields(pid)
        # a recycled pid is another process; a zombie (exited, not yet reaped by its parent) is not running
        if len(fields) <= 19 or fields[19] != started or fields[0] == "Z":
            return None
        return pid

    def ensure_running(self, name: str) -> Literal[False]:
        """Raise ComponentExited if name is not running; False otherwise, so that a wait's
        predicate reads `procs.ensure_running(name) or ready()`."""
        if self.pid_of(name) is None:
            raise ComponentExited(f"{name} exited; its log is {self.log_of(name)}")
        return False

    def rss_kib(self, name: str) -> int:
        pid = self.pid_of(name)
        if pid is None:
            return 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self, name: str, grace: float = 10.0) -> None:
        """SIGTERM the recorded pid, SIGKILL after `grace` seconds; forget it."""
        pid = self.pid_of(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._gone(name, grace):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if not self._gone(name, 5):
                    raise ClusterError(f"{name} (pid {pid}) did not stop after SIGKILL")
        (self.pids / f"{name}.pid").unlink(missing_ok=True)

    def _gone(self, name: str, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and self.pid_of(name) is not None:
            time.sleep(0.1)
        return self.pid_of(name) is None


def _shown(argv: list[str]) -> str:
    return " ".join(argv) if len(argv) <= 8 else " ".join(argv[:8]) + " ..."


def run(argv: list[str], timeout: float = 60, check: bool = True, input: str | None = None) -> str:
    """Run a short command; a failure becomes a ClusterError naming the command."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"`{_shown(argv)}` did not finish within {timeout:.0f}s") from None
    if check and done.returncode != 0:
        raise ClusterError(f"`{_shown(argv)}` failed: {(done.stderr or done.stdout).strip()[:500]}")
    return done.stdout


def wait_for(
    what: str, predicate: Callable[[], T], timeout: float, interval: float = 0.5, log: str | Path | None = None
) -> T:
    """Poll predicate until truthy; on timeout a ClusterError says what was awaited (and where to look)."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ComponentExited:
            raise
        except Exception as err:  # noqa: BLE001 - a component coming up raises all kinds of things
            last_error = str(err)
        if time.monotonic() > deadline:
            where = f"; see {log}" if log else ""
            last = f" (last: {last_error[:300]})" if last_error else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{last}{where}")
        time.sleep(interval)
