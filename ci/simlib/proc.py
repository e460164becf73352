"""Processes of the simulated cluster: the shared hostlib.proc with the simulator's directories."""

from __future__ import annotations

from hostlib.proc import BASE_PATH, ClusterError, ComponentExited, Procs, run, wait_for

from . import config

__all__ = ["ComponentExited", "SimError", "ensure_running", "pid_of", "rss_kib", "run", "start", "stop", "wait_for"]

# The simulator's failures are the shared ClusterError: one type whether the shared code or the simulator raised it.
SimError = ClusterError
_procs = Procs(config.LOGS, config.PIDS)
pid_of = _procs.pid_of
ensure_running = _procs.ensure_running
rss_kib = _procs.rss_kib
stop = _procs.stop


def start(name: str, argv: list[str]) -> int:
    """Start argv in its own session (cwd and HOME the simulator's state), logging to logs/<name>.log."""
    return _procs.start(name, argv, {"PATH": BASE_PATH, "HOME": str(config.STATE)}, cwd=config.STATE)
