"""Which cluster, and the one way to make an API client for it.

Selection works like kubectl: --kubeconfig, then $KUBECONFIG, then ~/.kube/config, then the
in-cluster service account; --context picks a context. Every client comes from `make_api_client`:
each REST call is bounded in time and counted (the terminal summary and the benchmark report the
counts), and a refused connection is retried once, so an unreachable API fails in seconds.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException

from netconform.errors import UsageError, api_error_sentence, error_text, redact, server_url

__all__ = [
    "API_CONNECT_TIMEOUT_S",
    "ClusterTarget",
    "count_exec",
    "get_json",
    "make_api_client",
    "request_counts",
    "resolve_target",
    "server_version",
    "version_of",
]

API_CONNECT_TIMEOUT_S = 3.0  # an unreachable API must fail fast, not after the OS's 2-minute SYN retries
API_READ_TIMEOUT_S = 30.0
INCLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

_counts = {"api": 0, "exec": 0}
_counts_lock = threading.Lock()


def _count(kind: str) -> None:
    with _counts_lock:
        _counts[kind] += 1


def count_exec() -> None:
    """One pod exec (a websocket, not a REST call): counted apart from API requests."""
    _count("exec")


def request_counts() -> dict[str, int]:
    """API requests and pod execs made by this process so far."""
    with _counts_lock:
        return dict(_counts)


class _CountingApiClient(k8s.ApiClient):
    """Bounds every REST call in time and counts it."""

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        _count("api")
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = (API_CONNECT_TIMEOUT_S, API_READ_TIMEOUT_S)
        return super().call_api(*args, **kwargs)


def make_api_client(configuration: k8s.Configuration) -> k8s.ApiClient:
    """The only ApiClient factory: bounded, counted, one quick connect retry."""
    configuration.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0)
    return _CountingApiClient(configuration)


def get_json(api: k8s.ApiClient, path: str, query: dict[str, str] | None = None) -> Any:
    """GET `path` (e.g. /api/v1/nodes) as plain JSON, bounded and counted like every call.

    For lists that grow with the cluster: the generated methods build a typed (pydantic) model of every
    field, which took seconds per list at 1000 nodes (the probe pod list is 11.5 MB). Raises
    k8s.ApiException on a non-2xx answer, like they do.
    """
    params = [(key, value) for key, value in (query or {}).items() if value]
    method, url, headers, body, post = api.param_serialize(
        "GET", path, query_params=params, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    response = api.call_api(method, url, headers, body, post)
    data = response.read()
    if not 200 <= response.status <= 299:
        raise k8s.ApiException(http_resp=response, body=data.decode("utf-8", "replace"))
    return json.loads(data)


@dataclass(frozen=True)
class ClusterTarget:
    """Where the kubeconfig (or the pod's service account) points."""

    configuration: k8s.Configuration
    context: str
    cluster_name: str


def resolve_target(kubeconfig: str | None, context: str | None, env: dict[str, str] | None = None) -> ClusterTarget:
    """Pick the cluster like kubectl does; every failure is a UsageError with one sentence."""
    env = dict(os.environ) if env is None else env
    source = "--kubeconfig"
    path = kubeconfig
    if not path and env.get("KUBECONFIG"):
        path, source = env["KUBECONFIG"], "$KUBECONFIG"
    if not path:
        default = Path(env.get("HOME", "~")).expanduser() / ".kube" / "config"
        if default.is_file():
            path, source = str(default), "~/.kube/config"
    if not path:
        return _in_cluster(env, context)
    files = [p for p in path.split(os.pathsep) if p]
    missing = [p for p in files if not Path(p).is_file()]
    if missing and len(missing) == len(files):
        raise UsageError(f"kubeconfig {missing[0]} (from {source}) does not exist")
    path = os.pathsep.join(p for p in files if p not in missing)
    contexts, current = _read_contexts(files)
    names = list(contexts)
    chosen = context or current
    if not chosen:
        raise UsageError(
            f"kubeconfig {path} has no current-context; pass --context ({', '.join(names) or 'none defined'})"
        )
    if chosen not in contexts:
        raise UsageError(
            f"context {chosen!r} is not in kubeconfig {path}; known contexts: {', '.join(names) or 'none'}"
        )
    cfg = k8s.Configuration()
    try:
        k8s_config.load_kube_config(config_file=path, context=chosen, client_configuration=cfg, persist_config=False)
    except (ConfigException, OSError, ValueError) as exc:
        raise UsageError(f"cannot use context {chosen!r} from {path}: {_first_line(exc)}") from None
    except (TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:  # a value of the wrong kind
        raise UsageError(f"cannot use context {chosen!r} from {path}: malformed ({type(exc).__name__})") from None
    keep_keys_in_memory(cfg)
    return ClusterTarget(cfg, chosen, contexts[chosen] or chosen)


_memory_files: list[int] = []  # the memfds behind the key paths: open for the life of the process


def keep_keys_in_memory(cfg: k8s.Configuration) -> None:
    """Move the client key and certificate the kubernetes client wrote to $TMPDIR (from a kubeconfig's
    client-key-data) into memory files: its own cleanup is atexit, which SIGKILL and os._exit skip, and
    a memfd goes with the process on every exit. Files the kubeconfig names itself stay as they are."""
    written = kube_config._temp_files  # content -> path of what the client wrote itself
    if not hasattr(os, "memfd_create"):
        return  # not Linux: the client's atexit cleanup is all there is
    for attr in ("key_file", "cert_file"):
        path = getattr(cfg, attr, None)
        owned = [content for content, name in written.items() if name == path]
        if not path or not owned:
            continue
        fd = os.memfd_create(f"netconform-{attr}")  # close-on-exec: no child inherits it
        os.write(fd, Path(path).read_bytes())
        _memory_files.append(fd)
        setattr(cfg, attr, f"/proc/self/fd/{fd}")
        Path(path).unlink(missing_ok=True)
        for content in owned:
            del written[content]  # the client would hand out the removed path again


def _in_cluster(env: dict[str, str], context: str | None) -> ClusterTarget:
    if env.get("KUBERNETES_SERVICE_HOST") and INCLUSTER_TOKEN.is_file():
        if context:
            raise UsageError(f"--context {context} needs a kubeconfig, but netconform runs in-cluster")
        cfg = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=cfg)
        return ClusterTarget(cfg, "in-cluster", "in-cluster")
    raise UsageError(
        "no cluster configured: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config or run netconform inside a pod"
    )


def _read_contexts(files: list[str]) -> tuple[dict[str, str], str | None]:
    """Context name -> cluster name, and the current context, merged like kubectl (first file wins)."""
    contexts: dict[str, str] = {}
    current = None
    for name in files:
        try:
            doc = yaml.safe_load(Path(name).read_text()) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read kubeconfig {name}: {_first_line(exc)}") from None
        except RecursionError:
            raise UsageError(f"cannot read kubeconfig {name}: nested too deeply") from None
        if not isinstance(doc, dict):
            raise UsageError(f"kubeconfig {name} is not a kubeconfig (no mapping at the top)")
        entries = doc.get("contexts") or []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"]:
                context = entry.get("context")
                cluster = context.get("cluster", "") if isinstance(context, dict) else ""
                contexts.setdefault(entry["name"], str(cluster or ""))
        named = doc.get("current-context")
        current = current or (named if isinstance(named, str) and named else None)
    return contexts, current


def _first_line(exc: BaseException) -> str:
    return error_text(exc)


def server_version(api: k8s.ApiClient, target: ClusterTarget) -> str:
    """First call to the API; turns 'cannot reach' and an answer that is not a version into one sentence."""
    server = server_url(target.configuration.host)
    try:
        return version_of(get_json(api, "/version"), server)
    except (ValueError, RecursionError):  # not JSON (a proxy's HTML page, say)
        raise UsageError(f"the API at {server} answered /version with something that is not JSON") from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UsageError(
            f"cannot reach the Kubernetes API at {server_url(target.configuration.host)} (context {target.context}): "
            f"{_unreachable_reason(reason)}"
        ) from None
    except k8s.ApiException as exc:
        raise UsageError(
            api_error_sentence(exc, f"read the server version from {server_url(target.configuration.host)}")
        ) from None


def version_of(doc: Any, server: str) -> str:
    """The gitVersion of a /version answer, bounded; UsageError (one sentence) when the answer has none."""
    version = doc.get("gitVersion") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.strip():
        raise UsageError(f"the API at {server} answered /version without a gitVersion: is it a Kubernetes API server?")
    return version.strip().splitlines()[0][:64]


def _unreachable_reason(reason: object) -> str:
    text = redact(str(reason))
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("timed out", f"no answer within {API_CONNECT_TIMEOUT_S:g}s"),
        ("Name or service not known", "unknown host name"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
        ("No route to host", "no route to host"),
    ):
        if needle in text:
            return words
    return text.splitlines()[0][:200]
