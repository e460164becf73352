"""Processes of the simulated cluster: started detached with a log, pid on file, stopped by that pid only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from . import config


class SimError(Exception):
    """A failure the operator can act on; its text is one sentence."""


class ComponentExited(SimError):
    """A component died: waiting for it any longer is pointless."""


def start(name: str, argv: list[str]) -> int:
    """Start argv in its own session, logging to logs/<name>.log; record pid and start time."""
    config.LOGS.mkdir(parents=True, exist_ok=True)
    config.PIDS.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(config.STATE)}
    with open(config.LOGS / f"{name}.log", "ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config.STATE,
            start_new_session=True,
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
    """The pid of a component the simulated cluster started, if that very process still runs."""
    try:
        pid_text, started = (config.PIDS / f"{name}.pid").read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    if _start_time(pid) != started:
        return None
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
    except (OSError, IndexError):
        return None
    return pid


def ensure_running(name: str) -> None:
    if pid_of(name) is None:
        raise ComponentExited(f"{name} exited; its log is {config.LOGS / (name + '.log')}")


def rss_kib(name: str) -> int:
    pid = pid_of(name)
    if pid is None:
        return 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stop(name: str, grace: float = 10.0) -> None:
    """SIGTERM the recorded pid, SIGKILL after `grace` seconds; forget it."""
    pid = pid_of(name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and pid_of(name) is not None:
            time.sleep(0.1)
        if pid_of(name) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and pid_of(name) is not None:
                time.sleep(0.1)
            if pid_of(name) is not None:
                raise SimError(f"{name} (pid {pid}) did not stop after SIGKILL")
    (config.PIDS / f"{name}.pid").unlink(missing_ok=True)


def run(argv: list[str], timeout: float = 60, check: bool = True, input: str | None = None) -> str:
    """Run a short command; a failure becomes a SimError naming the command."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        raise SimError(f"`{' '.join(argv[:4])} ...` did not finish within {timeout:.0f}s") from None
    if check and done.returncode != 0:
        raise SimError(f"`{' '.join(argv[:6])} ...` failed: {(done.stderr or done.stdout).strip()[:500]}")
    return done.stdout


def wait_for(what: str, predicate, timeout: float, interval: float = 0.5, log: Path | None = None):
    """Poll predicate until truthy; on timeout a SimError says what was awaited (and where to look)."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            value = predicate()
        except ComponentExited:
            raise
        except Exception as err:  # noqa: BLE001 - a component coming up raises all kinds of things
            value, last_error = None, str(err)
        if value:
            return value
        if time.monotonic() > deadline:
            where = f"; see {log}" if log else ""
            last = f" (last: {last_error[:300]})" if last_error else ""
            raise SimError(f"timed out after {timeout:.0f}s waiting for {what}{last}{where}")
        time.sleep(interval)
