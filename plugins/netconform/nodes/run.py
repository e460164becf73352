"""Run a command on a node's shell (the agent's exec, or a testinfra host), bounded in time
(testinfra itself has no timeout)."""

from __future__ import annotations

import shlex
import threading
from typing import TYPE_CHECKING, Any

from netconform.errors import redact

from .backend import COMMAND_TIMEOUT_S, CommandOutput, ExecBackend
from .spec import AccessError

if TYPE_CHECKING:  # the node-access extra: imported where ssh:// or docker:// hosts are made
    import testinfra.host

__all__ = ["one_line", "run_bounded"]


def run_bounded(
    host: ExecBackend | testinfra.host.Host, command: str, timeout_s: float = COMMAND_TIMEOUT_S
) -> CommandOutput:
    """Run `command` on `host`, giving up after timeout_s; AccessError when the host cannot be reached."""
    if isinstance(host, ExecBackend):
        return host.run_with_timeout(command, timeout_s)
    backend = host.backend
    inner = f"timeout {int(timeout_s)} sh -c {shlex.quote(command)}"
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = host.run(inner)
        except Exception as exc:  # boundary: paramiko/ssh/docker backends raise anything; it becomes one sentence
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)  # a hung ssh must not keep pytest alive
    worker.start()
    worker.join(timeout_s + 5)
    if worker.is_alive():
        raise AccessError(f"no answer within {timeout_s + 5:.0f}s")
    if "error" in box:
        raise AccessError(one_line(box["error"]))
    done = box["result"]
    result = CommandOutput(int(done.rc), str(done.stdout), str(done.stderr), inner)
    if result.rc == 255 and backend.get_connection_type() in ("ssh", "paramiko", "safe-ssh"):
        raise AccessError(f"ssh failed: {one_line(result.stderr) or 'rc 255'}")
    docker = backend.get_connection_type() in ("docker", "podman")
    if docker and result.rc in (125, 126, 127) and ("No such container" in result.stderr or "Error" in result.stderr):
        raise AccessError(one_line(result.stderr))
    return result


def one_line(x: object) -> str:
    """The last line of an error's text, at most 300 characters (the type's name when it says nothing)."""
    if isinstance(x, BaseException) and not str(x).strip():
        return type(x).__name__
    lines = [line for line in redact(str(x)).strip().splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else type(x).__name__
