"""The pod exec API as a testinfra backend (`/bin/sh -c` in the agent container), over `kube.exec`.

Why not testinfra's `kubectl://` backend: this reuses the suite's own connection (kubeconfig,
--context, in-cluster service account) without a kubectl binary or re-encoding the context into a
URL, costs no process per command, and is bounded in time from Python (kubectl exec is not).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s
from testinfra.backend import base as tbase

from netconform.kube.exec import ExecError, run_in_pod

from .spec import AccessError

__all__ = ["COMMAND_TIMEOUT_S", "ExecBackend"]

COMMAND_TIMEOUT_S = 60.0


class ExecBackend(tbase.BaseBackend):
    """testinfra backend over the pod exec API, with a real timeout."""

    NAME = "k8sexec"

    def __init__(self, pod: str, namespace: str, container: str, configuration: k8s.Configuration, **kwargs: Any):
        self.pod, self.namespace, self.container = pod, namespace, container
        self.configuration = configuration
        super().__init__(pod, **kwargs)

    def get_pytest_id(self) -> str:
        return f"k8sexec://{self.namespace}/{self.pod}"

    def run(self, command: str, *args: str, **kwargs: Any) -> tbase.CommandResult:
        return self.run_with_timeout(self.get_command(command, *args), COMMAND_TIMEOUT_S)

    def run_with_timeout(self, command: str, timeout_s: float) -> tbase.CommandResult:
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
        return self.result(done.rc, self.encode(command), done.stdout.encode(), done.stderr.encode())
