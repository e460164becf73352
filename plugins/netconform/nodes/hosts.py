"""`NodeHosts`: a shell per node for the chosen access method; the one object diagnosis uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netconform.errors import missing_extra
from netconform.workload.labels import AGENT_CONTAINER

from .agent import AgentFleet
from .backend import COMMAND_TIMEOUT_S, CommandOutput, ExecBackend
from .run import one_line, run_bounded
from .spec import AccessError, AccessSpec

if TYPE_CHECKING:
    import testinfra.host

__all__ = ["NodeHosts"]


class NodeHosts:
    """A shell per node: the agent pod's exec, or a testinfra host (ssh://, docker://: the node-access extra)."""

    def __init__(
        self, spec: AccessSpec, fleet: AgentFleet | None = None, node_ips: dict[str, str | None] | None = None
    ):
        self.spec, self.fleet, self.node_ips = spec, fleet, node_ips or {}
        self._hosts: dict[str, ExecBackend | testinfra.host.Host] = {}

    @property
    def enabled(self) -> bool:
        return self.spec.kind != "none"

    def host(self, node: str) -> ExecBackend | testinfra.host.Host:
        if node in self._hosts:
            return self._hosts[node]
        h: ExecBackend | testinfra.host.Host
        if self.spec.kind == "none":
            raise AccessError("node access is off (--node-access none)")
        if self.spec.kind == "agent":
            if self.fleet is None:
                raise AccessError("no run namespace to deploy the node agent into")
            pod = self.fleet.pod_on(node)
            h = ExecBackend(pod, self.fleet.namespace, AGENT_CONTAINER, self.fleet.configuration)
        else:
            hostspec = self.spec.hostspec(node, self.node_ips.get(node))  # checked: AccessError, one sentence
            try:
                import testinfra
            except ImportError:
                raise AccessError(
                    str(missing_extra(f"--node-access {self.spec.kind}", "pytest-testinfra", "node-access"))
                ) from None
            try:
                h = testinfra.get_host(hostspec)
            except Exception as exc:  # boundary: each testinfra backend fails its own way; one sentence
                raise AccessError(f"cannot set up {self.spec.kind} access: {one_line(exc)}") from None
        self._hosts[node] = h
        return h

    def run(self, node: str, command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> CommandOutput:
        """Run a shell command on a node, bounded; AccessError with one sentence on any failure."""
        result = run_bounded(self.host(node), command, timeout_s)
        if result.rc == 126 or "permission denied" in result.stderr.lower() and not result.stdout:
            raise AccessError(f"permission denied: {one_line(result.stderr)}")
        return result
