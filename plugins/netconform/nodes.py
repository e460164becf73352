"""Node access as pytest-testinfra hosts: `--node-access agent|ssh://user@{node}|docker://{node}|none`.

`agent` (default): a privileged hostNetwork+hostPID DaemonSet `nc-agent` in the run
namespace, created lazily on the first diagnosis (a green run pays nothing), and
reached through the Kubernetes exec API wrapped as a testinfra backend. Why the
exec API and not testinfra's `kubectl://` backend: it reuses the suite's own
connection (kubeconfig, --context, in-cluster service account, whatever
plugins.cluster resolved) without needing a kubectl binary or re-encoding the
context into a URL, it costs no process per command, and it can be bounded in
time from Python (kubectl exec cannot).

Every command is bounded twice: `timeout N` inside the node (the gather script
wraps each tool) and a Python-side deadline around the whole exec. Anything that
goes wrong becomes an `AccessError` with one sentence; the diagnose plugin turns
it into the finding "could not inspect <node>: ...".
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import testinfra
import testinfra.host
from testinfra.backend import base as tbase

from netconform.probes import images, only_on

AGENT_NAME = "nc-agent"
AGENT_ROLE = "agent"
AGENT_CONTAINER = "agent"
COMMAND_TIMEOUT_S = 60.0


class AccessError(Exception):
    """A node could not be reached or inspected; str() is one sentence for the operator."""


# ---------------------------------------------------------------- option


@dataclass(frozen=True)
class AccessSpec:
    kind: str  # agent | ssh | docker | none | other testinfra scheme
    template: str = ""  # e.g. "ssh://core@{node}"; {node} and {ip} are substituted

    def hostspec(self, node: str, ip: str | None) -> str:
        return self.template.replace("{node}", node).replace("{ip}", ip or node)


def parse_node_access(text: str) -> AccessSpec:
    """Validate --node-access; raises pytest.UsageError with one sentence."""
    t = (text or "agent").strip()
    if t in ("agent", "none"):
        return AccessSpec(t)
    scheme, sep, rest = t.partition("://")
    if not sep or not rest:
        raise pytest.UsageError(f"--node-access {t!r}: use agent, none, ssh://user@{{node}} or docker://{{node}}")
    if scheme not in testinfra.backend.BACKENDS:
        raise pytest.UsageError(
            f"--node-access {t!r}: unknown scheme {scheme!r} "
            f"(testinfra knows {', '.join(sorted(testinfra.backend.BACKENDS))})"
        )
    if "{node}" not in rest and "{ip}" not in rest:
        raise pytest.UsageError(f"--node-access {t!r} must contain {{node}} or {{ip}}, e.g. {scheme}://{{node}}")
    return AccessSpec(scheme, t)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform-nodes", "netconform node access (diagnosis)")
    group.addoption(
        "--node-access",
        metavar="HOW",
        default="agent",
        help="how diagnosis reaches nodes: agent (privileged DaemonSet, default), "
        "ssh://user@{node}, docker://{node} (kind), or none",
    )
    group.addoption(
        "--agent-timeout",
        metavar="SECONDS",
        type=float,
        default=90.0,
        help="how long to wait for the node agent pod on a node (default 90)",
    )


def pytest_configure(config: pytest.Config) -> None:
    parse_node_access(config.getoption("node_access"))  # fail early on a bad value


# ---------------------------------------------------------------- bounded run on any testinfra host


def run_bounded(host: testinfra.host.Host, command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> tbase.CommandResult:
    """Run `command` on `host`, giving up after timeout_s (testinfra itself has no timeout)."""
    backend = host.backend
    if isinstance(backend, K8sExecBackend):
        return backend.run_with_timeout(command, timeout_s)
    inner = f"timeout {int(timeout_s)} sh -c {shlex.quote(command)}"
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = host.run(inner)
        except Exception as exc:  # paramiko/ssh errors surface here
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)  # a hung ssh must not keep pytest alive
    worker.start()
    worker.join(timeout_s + 5)
    if worker.is_alive():
        raise AccessError(f"no answer within {timeout_s + 5:.0f}s")
    if "error" in box:
        raise AccessError(_one_line(box["error"]))
    result: tbase.CommandResult = box["result"]
    if result.rc == 255 and backend.get_connection_type() in ("ssh", "paramiko", "safe-ssh"):
        raise AccessError(f"ssh failed: {_one_line(result.stderr) or 'rc 255'}")
    if result.rc in (125, 126, 127) and backend.get_connection_type() in ("docker", "podman"):
        if "No such container" in result.stderr or "Error" in result.stderr:
            raise AccessError(_one_line(result.stderr))
    return result


def _api_message(exc: Any) -> str:
    """The API server's own sentence from an ApiException body (why a 422 was refused), or ''."""
    try:
        import json

        msg = json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError, TypeError):
        return ""
    return f" ({msg[:300]})" if msg else ""


def _one_line(x: object) -> str:
    text = str(x).strip()
    return text.splitlines()[-1][:300] if text else type(x).__name__


# ---------------------------------------------------------------- kubernetes exec as a testinfra backend


class K8sExecBackend(tbase.BaseBackend):
    """testinfra backend over the pod exec API (`/bin/sh -c`), with a real timeout."""

    NAME = "k8sexec"

    def __init__(self, pod: str, namespace: str, container: str, api_factory: Callable[[], Any], **kwargs: Any):
        self.pod, self.namespace, self.container = pod, namespace, container
        self._api_factory = api_factory
        super().__init__(pod, **kwargs)

    def get_pytest_id(self) -> str:
        return f"k8sexec://{self.namespace}/{self.pod}"

    def run(self, command: str, *args: str, **kwargs: Any) -> tbase.CommandResult:
        return self.run_with_timeout(self.get_command(command, *args), COMMAND_TIMEOUT_S)

    def run_with_timeout(self, command: str, timeout_s: float) -> tbase.CommandResult:
        from kubernetes import client
        from kubernetes.stream import stream

        api = self._api_factory()  # one ApiClient per call: stream() patches it, threads must not share
        core = client.CoreV1Api(api)
        try:
            resp = stream(
                core.connect_get_namespaced_pod_exec,
                self.pod,
                self.namespace,
                container=self.container,
                command=["/bin/sh", "-c", command],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
                _request_timeout=timeout_s,
            )
        except Exception as exc:
            raise AccessError(f"exec into {self.namespace}/{self.pod} failed: {_one_line(exc)}") from None
        out: list[str] = []
        err: list[str] = []
        deadline = time.monotonic() + timeout_s
        try:
            while resp.is_open():
                if time.monotonic() > deadline:
                    raise AccessError(f"command did not finish within {timeout_s:.0f}s")
                resp.update(timeout=1)
                if resp.peek_stdout():
                    out.append(resp.read_stdout())
                if resp.peek_stderr():
                    err.append(resp.read_stderr())
            rc = resp.returncode
        finally:
            resp.close()
        return self.result(
            rc if rc is not None else 1, self.encode(command), "".join(out).encode(), "".join(err).encode()
        )


# ---------------------------------------------------------------- the agent DaemonSet


def agent_manifest(namespace: str, image: str, node_names: list[str]) -> dict[str, Any]:
    """The node agent: host network/PID namespaces, privileged, network tools, does nothing by itself."""
    labels = {
        "app.kubernetes.io/name": AGENT_NAME,
        "app.kubernetes.io/managed-by": "netconform",
        "netconform.io/role": AGENT_ROLE,
    }
    host_ro = [("host-run", "/run", "/host/run"), ("host-etc", "/etc", "/host/etc")]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": AGENT_NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"netconform.io/role": AGENT_ROLE}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": only_on(node_names),
                    "hostNetwork": True,
                    "hostPID": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "tolerations": [{"operator": "Exists"}],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": AGENT_CONTAINER,
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "infinity"],
                            "securityContext": {"privileged": True},
                            "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "256Mi"}},
                            # /run/flannel and /etc/cni/net.d as the node sees them; read-only
                            "volumeMounts": [{"name": n, "mountPath": m, "readOnly": True} for n, _, m in host_ro],
                        }
                    ],
                    "volumes": [{"name": n, "hostPath": {"path": p}} for n, p, _ in host_ro],
                },
            },
        },
    }


def agent_image(config: pytest.Config) -> str:
    return images(config)["agent"]


class AgentFleet:
    """Deploys nc-agent once (lazily) and finds its pod per node."""

    def __init__(
        self, api_factory: Callable[[], Any], namespace: str, image: str, node_names: list[str], wait_s: float = 90.0
    ):
        self.api_factory, self.namespace, self.image = api_factory, namespace, image
        self.node_names, self.wait_s = list(node_names), wait_s
        self._deployed: str | None = None  # None = not yet; "" = ok; text = why not
        self._lock = threading.Lock()

    def ensure(self) -> None:
        with self._lock:
            if self._deployed is None:
                self._deployed = self._deploy()
        if self._deployed:
            raise AccessError(self._deployed)

    def _deploy(self) -> str:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        apps = client.AppsV1Api(self.api_factory())
        try:
            apps.create_namespaced_daemon_set(
                self.namespace, agent_manifest(self.namespace, self.image, self.node_names), _request_timeout=15
            )
        except ApiException as exc:
            if exc.status != 409:  # 409: another xdist worker created it first
                return (
                    f"cannot create DaemonSet {AGENT_NAME} in {self.namespace}: {exc.status} {exc.reason}"
                    f"{_api_message(exc)}"
                )
        except Exception as exc:
            return f"cannot create DaemonSet {AGENT_NAME} in {self.namespace}: {_one_line(exc)}"
        return ""

    def pod_on(self, node: str) -> str:
        """Name of the Ready agent pod on `node`, waiting up to wait_s; AccessError otherwise."""
        from kubernetes import client

        self.ensure()
        core = client.CoreV1Api(self.api_factory())
        deadline = time.monotonic() + self.wait_s
        last = "no agent pod scheduled yet"
        while True:
            try:
                pods = core.list_namespaced_pod(
                    self.namespace,
                    label_selector=f"netconform.io/role={AGENT_ROLE}",
                    field_selector=f"spec.nodeName={node}",
                    _request_timeout=10,
                ).items
            except Exception as exc:
                raise AccessError(f"cannot list agent pods: {_one_line(exc)}") from None
            for p in pods:
                if p.metadata.deletion_timestamp is None and any(
                    c.type == "Ready" and c.status == "True" for c in p.status.conditions or []
                ):
                    return str(p.metadata.name)
                last = _pod_state(p)
            if time.monotonic() > deadline:
                raise AccessError(f"agent pod not ready after {self.wait_s:.0f}s ({last})")
            time.sleep(1)


def _pod_state(p: Any) -> str:
    for cs in p.status.container_statuses or []:
        if cs.state and cs.state.waiting and cs.state.waiting.reason:
            return f"{p.metadata.name}: {cs.state.waiting.reason} {cs.state.waiting.message or ''}".strip()
    return f"{p.metadata.name}: {p.status.phase}"


# ---------------------------------------------------------------- one object the diagnosis uses


class NodeHosts:
    """testinfra Host per node for the chosen access method."""

    def __init__(
        self, spec: AccessSpec, fleet: AgentFleet | None = None, node_ips: dict[str, str | None] | None = None
    ):
        self.spec, self.fleet, self.node_ips = spec, fleet, node_ips or {}
        self._hosts: dict[str, testinfra.host.Host] = {}

    @property
    def enabled(self) -> bool:
        return self.spec.kind != "none"

    def host(self, node: str) -> testinfra.host.Host:
        if node in self._hosts:
            return self._hosts[node]
        if self.spec.kind == "none":
            raise AccessError("node access is off (--node-access none)")
        if self.spec.kind == "agent":
            if self.fleet is None:
                raise AccessError("no run namespace to deploy the node agent into")
            pod = self.fleet.pod_on(node)
            h = testinfra.host.Host(K8sExecBackend(pod, self.fleet.namespace, AGENT_CONTAINER, self.fleet.api_factory))
        else:
            try:
                h = testinfra.get_host(self.spec.hostspec(node, self.node_ips.get(node)))
            except Exception as exc:
                raise AccessError(f"cannot set up {self.spec.kind} access: {_one_line(exc)}") from None
        self._hosts[node] = h
        return h

    def run(self, node: str, command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> tbase.CommandResult:
        """Run a shell command on a node, bounded; AccessError with one sentence on any failure."""
        result = run_bounded(self.host(node), command, timeout_s)
        if result.rc == 126 or "permission denied" in result.stderr.lower() and not result.stdout:
            raise AccessError(f"permission denied: {_one_line(result.stderr)}")
        return result
