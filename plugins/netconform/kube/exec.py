"""The one pod exec: a command (and optional stdin) in a container, bounded by a deadline.

Every exec in netconform goes through `run_in_pod`: the probe's dial, the node agent's commands,
packet captures. A transport or API failure, or a command still running at the deadline, is an
`ExecError` with one sentence; what the command itself did is in `ExecResult`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import websocket
from kubernetes import client as k8s
from kubernetes.stream import stream
from kubernetes.stream.ws_client import WSClient

from netconform.errors import NetconformError, error_text
from netconform.kube.connect import count_exec, make_api_client

__all__ = ["ExecError", "ExecResult", "run_in_pod"]


class ExecError(NetconformError):
    """The exec itself failed (API, websocket, deadline): no verdict on what the command would say."""


@dataclass(frozen=True)
class ExecResult:
    rc: int
    stdout: str
    stderr: str


def run_in_pod(
    configuration: k8s.Configuration,
    namespace: str,
    pod: str,
    command: list[str],
    *,
    container: str | None = None,
    stdin: str | None = None,
    timeout_s: float,
) -> ExecResult:
    """Run `command` in `pod` and wait for it, at most `timeout_s` (ExecError otherwise).

    A fresh client per exec: kubernetes.stream swaps `call_api` on the client it is given, which is
    not safe across threads.
    """
    api = make_api_client(configuration)
    count_exec()
    where = f"{namespace}/{pod}"
    websocket.setdefaulttimeout(timeout_s)  # websocket-client has no connect timeout of its own
    deadline = time.monotonic() + timeout_s
    try:
        resp = _open(api, namespace, pod, command, container, stdin is not None, timeout_s)
        try:
            if stdin is not None:
                _send_stdin(resp, stdin)
            out, err = _collect(resp, deadline, where, timeout_s)
            rc = resp.returncode
        finally:
            resp.close()
    except k8s.ApiException as exc:
        raise ExecError(f"exec into {where} failed: {exc.status} {(exc.reason or '').strip()}") from None
    except websocket.WebSocketBadStatusException as exc:
        raise ExecError(f"exec into {where} refused: {_handshake_sentence(exc)}") from None
    except (websocket.WebSocketException, OSError, ValueError, KeyError, TypeError) as exc:
        raise ExecError(f"exec into {where} failed: {type(exc).__name__}: {_first_line(exc)}") from None
    finally:
        api.close()
    return ExecResult(rc if rc is not None else 1, out, err)


def _open(
    api: k8s.ApiClient,
    namespace: str,
    pod: str,
    command: list[str],
    container: str | None,
    with_stdin: bool,
    timeout_s: float,
) -> WSClient:
    extra = {"container": container} if container else {}
    resp: WSClient = stream(
        k8s.CoreV1Api(api).connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=command,
        stdin=with_stdin,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
        _request_timeout=timeout_s,
        **extra,
    )
    return resp


def _send_stdin(resp: WSClient, data: str) -> None:
    """Write stdin and close it, so the command sees end of input (v5 exec protocol, Kubernetes >= 1.30).

    On the older v4 protocol stdin cannot be closed: the command must stop reading by itself
    (`probe dial --spec -` reads exactly one JSON document).
    """
    resp.write_stdin(data)
    resp.close_channel(0)


def _collect(resp: WSClient, deadline: float, where: str, timeout_s: float) -> tuple[str, str]:
    out: list[str] = []
    err: list[str] = []
    while resp.is_open():
        if time.monotonic() > deadline:
            raise ExecError(f"the command in {where} did not finish within {timeout_s:.0f}s")
        resp.update(timeout=1)
        if resp.peek_stdout():
            out.append(resp.read_stdout())
        if resp.peek_stderr():
            err.append(resp.read_stderr())
    out.append(resp.read_stdout() if resp.peek_stdout() else "")
    err.append(resp.read_stderr() if resp.peek_stderr() else "")
    return "".join(out), "".join(err)


def _handshake_sentence(exc: websocket.WebSocketBadStatusException) -> str:
    """`403 Forbidden: pods "x" is forbidden: ...` from the API's Status body, never the header dump."""
    words = f"{exc.status_code} {exc.status_message or ''}".strip()
    try:
        message = json.loads(exc.resp_body or b"{}").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"{words}: {message}" if message else words


def _first_line(exc: BaseException) -> str:
    return error_text(exc, 200)
