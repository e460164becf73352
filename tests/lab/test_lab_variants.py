"""The lab's variants and its control-plane node, for real.

- `ci/lab up` again on an up lab says so and keeps it (its own routes are no clash).
- `ci/lab up` refuses what the lab cannot be (IPVS, sizes past the maximum, unknown names) in one
  sentence and a non-zero exit, before touching anything (no lab needed).
- The variant recorded in the lab's state dir (variant.json, format in ci/LAB.md) is what runs: node
  count, kube-proxy mode as published in kube-system/kube-proxy, flannel backend, IP families, version.
- The API server reaches the pod network like a kubeadm control-plane node: its pod proxy answers
  from a probe pod, and the root namespace (the control plane's) reaches a ClusterIP; the lab stays
  sealed off from the machine's network meanwhile (`ci/lab status`).
- On a host-gw lab, the faults that need flannel.1 refuse in one sentence.

Marked `lab` where a lab is needed (skipped unless NETCONFORM_LAB_KUBECONFIG is set); the test that
deploys holds the shared lab lock.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import REPO, lab, lab_lock

STATE = Path("/var/lib/netconform-lab")
KUBE = STATE / "bin" / "kube"
PROBE_IMAGE = "ghcr.io/netconform/probe:0.1.0"


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        [str(KUBE), "kubectl", f"--kubeconfig={kubeconfig}", "--request-timeout=20s", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )
    if check and done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def variant() -> dict[str, Any]:
    path = STATE / "variant.json"
    if not path.is_file():
        pytest.skip(f"{path} does not exist (a lab brought up before variants were recorded)")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- no lab needed


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--proxy-mode", "ipvs"], "this machine's kernel has no IPVS"),
        (["--proxy-mode", "userspace"], "--proxy-mode takes iptables or nftables"),
        (["--flannel-backend", "wireguard"], "--flannel-backend takes vxlan or host-gw"),
        (["--ip-family", "ipv6"], "--ip-family takes ipv4 or dual"),
        (["--nodes", "0"], "--nodes takes 1 to 12"),
        (["--nodes", "13"], "--nodes takes 1 to 12"),
    ],
    ids=["ipvs", "bad-proxy-mode", "bad-backend", "ipv6-only", "no-nodes", "too-many-nodes"],
)
def test_up_refuses_what_the_lab_cannot_be_in_one_sentence(args: list[str], says: str) -> None:
    started = time.monotonic()
    done = subprocess.run([str(REPO / "ci" / "lab"), "up", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ci/lab up: ") and says in lines[0], done.stderr
    assert time.monotonic() - started < 10  # refused before building or touching anything


# ---------------------------------------------------------------- on the lab


@pytest.mark.lab
def test_up_again_on_an_up_lab_says_so_and_touches_nothing() -> None:
    """The root namespace's multipath routes into the lab (via nclab0) are the lab's own: a second
    `ci/lab up` of the same shape must not take them for a clash with the machine's routes."""
    var = variant()
    args = [
        "--nodes",
        str(var["nodes"]),
        "--proxy-mode",
        var["proxy_mode"],
        "--flannel-backend",
        var["flannel_backend"],
        "--ip-family",
        var["ip_family"],
    ]
    with lab_lock():
        done = subprocess.run([str(REPO / "ci" / "lab"), "up", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the lab is already up" in done.stdout, done.stdout[-2000:]
    assert "cleaning up" not in done.stdout


@pytest.mark.lab
def test_recorded_variant_is_what_runs(admin_kubeconfig: str) -> None:
    var = variant()
    assert set(var) >= {"format", "nodes", "proxy_mode", "flannel_backend", "ip_family", "version"}
    nodes = json.loads(kubectl(admin_kubeconfig, "get", "nodes", "-o", "json"))["items"]
    assert len(nodes) == var["nodes"]
    families = 2 if var["ip_family"] == "dual" else 1
    for item in nodes:
        name = item["metadata"]["name"]
        assert len(item["spec"]["podCIDRs"]) == families, name
        internal = [a["address"] for a in item["status"]["addresses"] if a["type"] == "InternalIP"]
        assert len(internal) == families, (name, internal)
        assert item["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-type"] == var["flannel_backend"]
        assert item["status"]["nodeInfo"]["kubeletVersion"] == var["version"]
    published = kubectl(admin_kubeconfig, "-n", "kube-system", "get", "configmap", "kube-proxy", "-o", "json")
    assert json.loads(json.loads(published)["data"]["config.conf"])["mode"] == var["proxy_mode"]
    status = lab("status")
    assert f"variant: {var['nodes']} nodes, kube-proxy {var['proxy_mode']}, flannel {var['flannel_backend']}" in (
        status.stdout
    )


@pytest.fixture(scope="module")
def probe_pod(admin_kubeconfig: str) -> Iterator[dict[str, str]]:
    """A probe server pod and a ClusterIP Service in a namespace of their own (deleted after)."""
    ns = f"nc-lab-variants-{secrets.token_hex(3)}"
    labels = {"app": "nc-cp-probe"}
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "server", "namespace": ns, "labels": labels},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "probe",
                        "image": PROBE_IMAGE,
                        "imagePullPolicy": "Never",
                        "args": ["serve"],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "server", "namespace": ns},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
        },
    ]
    with lab_lock():
        kubectl(
            admin_kubeconfig, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        )
        try:
            kubectl(admin_kubeconfig, "-n", ns, "wait", "--for=condition=Ready", "pod/server", "--timeout=90s")
            pod = json.loads(kubectl(admin_kubeconfig, "-n", ns, "get", "pod", "server", "-o", "json"))
            svc = json.loads(kubectl(admin_kubeconfig, "-n", ns, "get", "svc", "server", "-o", "json"))
            yield {"ns": ns, "pod_ip": pod["status"]["podIP"], "node": pod["spec"]["nodeName"],
                   "cluster_ip": svc["spec"]["clusterIP"]}  # fmt: skip
        finally:
            kubectl(admin_kubeconfig, "delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def retry(what: str, fn: Any, timeout: float = 30.0) -> Any:
    """fn() until it returns without raising; bounded, and says what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - endpoints and proxy rules settle within seconds
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout:.0f}s for {what}: {err}")
            time.sleep(1.0)


@pytest.mark.lab
def test_api_server_pod_proxy_reaches_a_probe_pod(admin_kubeconfig: str, probe_pod: dict[str, str]) -> None:
    """What upstream's DNS and Proxy conformance specs need: the API server dials the pod IP itself."""
    path = f"/api/v1/namespaces/{probe_pod['ns']}/pods/server:8080/proxy/whoami"

    def ask() -> dict[str, Any]:
        done = subprocess.run(
            [str(KUBE), "kubectl", f"--kubeconfig={admin_kubeconfig}", "--request-timeout=10s", "get", "--raw", path],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-300:])
        return json.loads(done.stdout)

    whoami = retry(f"the API server's pod proxy to answer {path}", ask)
    assert whoami["hostname"] == "server"
    # The API server's own address on the lab link: no NAT between the control plane and the pod.
    assert whoami["client_ip"] == "10.99.0.1", whoami


@pytest.mark.lab
def test_control_plane_reaches_cluster_ips_and_stays_sealed(probe_pod: dict[str, str]) -> None:
    """The root namespace (where the control plane runs) reaches a ClusterIP, through any node's kube-proxy."""
    url = f"http://{probe_pod['cluster_ip']}:8080/whoami"

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy

    def ask() -> dict[str, Any]:
        with direct.open(url, timeout=3) as answer:
            return json.loads(answer.read())

    assert retry(f"{url} to answer from the root namespace", ask)["hostname"] == "server"
    status = lab("status")
    assert "isolation: sealed" in status.stdout, status.stdout


@pytest.mark.lab
@pytest.mark.usefixtures("admin_kubeconfig")
@pytest.mark.parametrize("fault", ["stale-arp", "stale-arp-fdb", "vxlan-blocked", "mtu-mismatch"])
def test_vxlan_faults_refuse_on_host_gw(fault: str) -> None:
    """host-gw has no flannel.1: the faults that need it say so in one sentence and change nothing."""
    if variant()["flannel_backend"] != "host-gw":
        pytest.skip("the lab runs flannel vxlan (ci/lab up --flannel-backend host-gw)")
    with lab_lock():
        done = lab("fault", fault, "--node", "lab-node-1", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"ci/lab fault: {fault} needs flannel's VXLAN device flannel.1, which this lab's host-gw backend does not have"
    )
