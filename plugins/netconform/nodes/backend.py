"""The pod exec API as a node's shell (`/bin/sh -c` in the agent container), over `kube.exec`.

Why not testinfra's `kubectl://` backend: this reuses the suite's own connection (kubeconfig,
--context, in-cluster service account) without a kubectl binary or re-encoding the context into a
URL, costs no process per command, and is bounded in time from Python (kubectl exec is not). It needs
no testinfra either: the default access works without the `node-access` extra.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client as k8s

from netconform.kube.exec import ExecError, run_in_pod

from .spec import AccessError

__all__ = ["COMMAND_TIMEOUT_S", "CommandOutput", "ExecBackend"]

COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CommandOutput:
    """What a command on a node gave: the fields diagnosis reads of testinfra's CommandResult too."""

    rc: int
    stdout: str
    stderr: str
    command: str = ""


class ExecBackend:
    """A node's shell over the pod exec API, with a real timeout."""

    NAME = "k8sexec"

    def __init__(self, pod: str, namespace: str, container: str, configuration: k8s.Configuration):
        self.pod, self.namespace, self.container = pod, namespace, container
        self.configuration = configuration

    def run_with_timeout(self, command: str, timeout_s: float) -> CommandOutput:
        """`command` through `/bin/sh -c`; AccessError with one sentence when the exec itself fails."""
        try:
            done = run_in_pod(
                self.configuration,
                self.namespace,
                self.pod,
                ["/bin/sh", "-c", command],
                container=self.container,
                timeout_s=timeout_s,
            )
        except ExecError as exc:
            raise AccessError(str(exc)) from None
        return CommandOutput(done.rc, done.stdout, done.stderr, command)
