"""No credential in any output: exception text scrubbed at one place (errors.error_text), API server URLs
without userinfo, the client key the kubernetes client writes kept off the disk, and SIGTERM issuing the
run namespace's delete before anything else."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.config import kube_config

from netconform.diagnose import capture_live
from netconform.diagnose.facts_record import facts_from_dict
from netconform.dialing.path import PathInfo
from netconform.errors import api_error_sentence, error_text, redact, server_url
from netconform.kube.connect import resolve_target
from netconform.nodes.run import one_line
from netconform.plugin import session
from netconform.workload import namespace as workload_namespace

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.sig"


def api_exception() -> k8s.ApiException:
    """What a failed call raises: its str() is the response headers and the whole body."""
    resp = types.SimpleNamespace(
        status=500,
        reason="Internal Server Error",
        data=json.dumps({"kind": "Status", "message": "etcd timeout", "token": TOKEN}).encode(),
        headers={"Set-Cookie": f"session={TOKEN}", "Authorization": f"Bearer {TOKEN}"},
    )
    exc = k8s.ApiException(http_resp=resp)
    assert TOKEN in str(exc)  # the kubernetes client's own text carries it
    return exc


def test_an_api_exception_becomes_status_reason_and_message_only() -> None:
    exc = api_exception()
    assert error_text(exc) == "500 Internal Server Error: etcd timeout"
    assert TOKEN not in api_error_sentence(exc, "list pods")


@pytest.mark.parametrize(
    "text",
    [
        f"HTTPSConnectionPool(host='x'): Max retries exceeded with url: https://admin:{TOKEN}@10.0.0.1:6443/api",
        f"headers: {{'Authorization': 'Bearer {TOKEN}'}}",
        f"Authorization: Basic {TOKEN}",
        f"-----BEGIN RSA PRIVATE KEY-----\n{TOKEN}\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_credentials_in_any_error_text_are_redacted(text: str) -> None:
    assert TOKEN not in error_text(RuntimeError(text)) and TOKEN not in one_line(RuntimeError(text))
    assert TOKEN not in redact(text)


def test_a_failed_capture_says_the_status_not_the_response(monkeypatch: pytest.MonkeyPatch) -> None:
    class Hosts:
        def run(self, node: str, command: str, timeout_s: float = 60.0) -> object:
            raise api_exception()

    def pods_refused(*args: object) -> object:
        raise api_exception()

    monkeypatch.setattr(capture_live, "probe_ends", pods_refused)  # the API refuses the probe pods' list
    path = PathInfo("pod_to_pod", "n1", "n2", "10.244.2.2:8080", "timeout")
    got = capture_live.capture_path(Hosts(), facts_from_dict({}), None, "ns", [path], 3, lambda n, d: None)  # type: ignore[arg-type]
    assert got.text == "capture failed: 500 Internal Server Error: etcd timeout\n"


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        ("https://admin:s3cret@10.0.0.1:6443", "https://10.0.0.1:6443"),
        ("https://tok@[fd00::1]:6443/k8s/clusters/c-1?token=s3cret#x", "https://[fd00::1]:6443/k8s/clusters/c-1"),
        ("https://10.0.0.1:6443", "https://10.0.0.1:6443"),
        ("", ""),
    ],
)
def test_server_urls_are_printed_without_userinfo_or_query(url: str, printed: str) -> None:
    assert server_url(url) == printed


def _kubeconfig_with_key_data(tmp_path: Path) -> Path:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert]
        + ["-subj", "/CN=netconform-test", "-days", "1"],
        check=True,
        capture_output=True,
    )
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "cl", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "c", "context": {"cluster": "cl", "user": "u"}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
                    "client-key-data": base64.b64encode(key.read_bytes()).decode(),
                },
            }
        ],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_client_key_from_key_data_never_stays_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)
    kubeconfig = _kubeconfig_with_key_data(tmp_path)
    cfg = resolve_target(str(kubeconfig), None, env={}).configuration
    assert os.listdir(tmp) == []  # what the kubernetes client wrote is gone at once, not at exit (SIGKILL skips that)
    assert cfg.key_file.startswith("/proc/self/fd/") and b"PRIVATE KEY" in Path(cfg.key_file).read_bytes()
    assert cfg.key_file not in kube_config._temp_files.values()
    again = resolve_target(str(kubeconfig), None, env={}).configuration  # a second client (a reconnect)
    assert Path(again.key_file).read_bytes() == Path(cfg.key_file).read_bytes() and os.listdir(tmp) == []


def test_a_killed_process_leaves_no_key_file(tmp_path: Path) -> None:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    kubeconfig = _kubeconfig_with_key_data(tmp_path)
    code = (
        "import os, signal; from netconform.kube.connect import resolve_target; "
        f"resolve_target({str(kubeconfig)!r}, None, env={{}}); os.kill(os.getpid(), signal.SIGKILL)"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmp)}, check=False)
    assert done.returncode == -signal.SIGKILL and os.listdir(tmp) == []


def test_sigterm_issues_the_namespace_delete_before_the_ctrl_c_path(pytester: pytest.Pytester) -> None:
    order: list[str] = []
    config = pytester.parseconfig()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        session._install_sigterm_handler(config)
        deleted = types.SimpleNamespace(
            delete_namespace=lambda name, **kw: order.append(f"delete {name} {kw.get('propagation_policy')}")
        )
        session.on_sigterm(config, lambda: workload_namespace.delete_namespace(deleted, "netconform-x", wait_s=0.0))  # type: ignore[arg-type]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            order.append("not reached")
        order.append("interrupted")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert order == ["delete netconform-x Foreground", "interrupted"]


def test_the_delete_at_the_end_after_the_one_on_sigterm_waits_for_it() -> None:
    class Core:
        def delete_namespace(self, name: str, **kw: object) -> None:
            raise k8s.ApiException(status=409, reason="Conflict")  # already terminating

        def read_namespace(self, name: str) -> None:
            raise k8s.ApiException(status=404, reason="Not Found")

    said = workload_namespace.delete_namespace(Core(), "netconform-x", wait_s=5)  # type: ignore[arg-type]
    assert said is not None and said.startswith("removed namespace netconform-x")


def test_a_namespace_the_sigterm_delete_already_removed_is_said_removed() -> None:
    class Core:
        def delete_namespace(self, name: str, **kw: object) -> None:
            raise k8s.ApiException(status=404, reason="Not Found")

    import time

    said = workload_namespace.delete_namespace(Core(), "netconform-x", wait_s=60, issued_at=time.monotonic() - 2)  # type: ignore[arg-type]
    assert said is not None and said.startswith("removed namespace netconform-x (2.")
    assert workload_namespace.delete_namespace(Core(), "netconform-x", wait_s=60) is None  # not ours to say
