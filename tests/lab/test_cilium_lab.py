"""The Cilium lab variant (`ci/lab up --cni cilium`, ci/LAB.md) is what it says it is.

Under the lab lock throughout: `ci/lab down`, `ci/lab up --cni cilium`, then on every node the agent
runs and `cilium-dbg status` says OK, the datapath is Cilium's (cilium_host, cilium_vxlan; no flanneld,
no flannel.1, no cni0 bridge), pods get addresses from their node's podCIDR through cilium-cni (an
endpoint in the agent, its host side an lxc* veth), and pods on different nodes reach each other
through the tunnel. Afterwards `ci/lab down` leaves no bpffs, cgroup or node directory behind, and the
default lab is brought up again.

Marked `cilium` and skipped unless NETCONFORM_LAB_CILIUM=1: a cold build of Cilium takes many minutes
and the test takes the shared lab down and up (unless the lab is already the Cilium variant, as a CI
stage that brought it up once has it: then it is used as it is).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import kubectl_admin, lab, lab_cni, lab_lock

pytestmark = [
    pytest.mark.lab,
    pytest.mark.cilium,
    pytest.mark.skipif(
        os.environ.get("NETCONFORM_LAB_CILIUM") != "1",
        reason="the Cilium lab tests run with NETCONFORM_LAB_CILIUM=1 (Cilium build, lab down/up)",
    ),
]
STATE = Path("/var/lib/netconform-lab")
UP_TIMEOUT_S = 3600  # a cold build of Cilium included
PROBE_IMAGE = "ghcr.io/netconform/probe:0.1.0"


def host_view() -> dict[str, str]:
    """What the Cilium lab must not leave on the machine: mounts, /sys/fs/bpf, the lab's cgroups."""
    mounts = "\n".join(
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "netconform-lab" in line
    )
    cgroups = "\n".join(str(p) for p in Path("/sys/fs/cgroup").glob("*/netconform-lab*"))
    return {"mounts": mounts, "bpffs": "\n".join(sorted(os.listdir("/sys/fs/bpf"))), "cgroups": cgroups}


@pytest.fixture(scope="module")
def cilium_lab(admin_kubeconfig: str) -> Iterator[dict[str, Any]]:
    """The Cilium lab. Already up (whoever brought it up takes it down; ci/test's final down fails on
    anything left behind): used as it is. Else: down, up as Cilium, down compared, default up again."""
    with lab_lock():
        if lab_cni() == "cilium":
            yield {"before": None, "variant": json.loads((STATE / "variant.json").read_text())}
            return
        try:
            lab("down", timeout=600)
            before = host_view()
            lab("up", "--cni", "cilium", timeout=UP_TIMEOUT_S)
            yield {"before": before, "variant": json.loads((STATE / "variant.json").read_text())}
            lab("down", timeout=600)
            after = host_view()
            assert after == before, f"ci/lab down left behind: {after} (before up: {before})"
        finally:
            lab("down", timeout=600)
            lab("up", timeout=UP_TIMEOUT_S)


def nodes(admin: str) -> list[dict[str, Any]]:
    return json.loads(kubectl_admin(admin, "get", "nodes", "-o", "json"))["items"]


def in_node(name: str, *argv: str) -> str:
    """argv in node `name`'s network and mount namespaces (those of its namespace holder)."""
    pid = (STATE / "pids" / f"{name}-ns.pid").read_text().split()[0]
    done = subprocess.run(
        ["nsenter", "-t", pid, "--net", "--mount", "--", *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{' '.join(argv)} on {name}: {done.stderr.strip()[-500:]}"
    return done.stdout


def cilium_dbg(name: str, *args: str) -> str:
    return in_node(name, str(STATE / "cilium-bin" / "cilium-dbg"), *args)


def test_variant_and_status_name_cilium(cilium_lab: dict[str, Any], admin_kubeconfig: str) -> None:
    assert cilium_lab["variant"]["cni"] == "cilium"
    status = lab("status")
    first = status.stdout.splitlines()[0]
    assert first.startswith(f"variant: {len(nodes(admin_kubeconfig))} nodes, kube-proxy iptables, cilium vxlan,"), first
    assert "isolation: sealed" in status.stdout, status.stdout
    for item in nodes(admin_kubeconfig):
        name = item["metadata"]["name"]
        assert f"cilium: {name} agent OK" in status.stdout, status.stdout
        assert f"{name}-flanneld" not in status.stdout


def test_each_node_runs_cilium_s_datapath(cilium_lab: dict[str, Any], admin_kubeconfig: str) -> None:
    for item in nodes(admin_kubeconfig):
        name = item["metadata"]["name"]
        assert cilium_dbg(name, "status", "--brief").strip() == "OK"
        status = json.loads(cilium_dbg(name, "status", "-o", "json"))
        assert status["kube-proxy-replacement"]["mode"] == "False", status["kube-proxy-replacement"]
        links = {line.split(":")[1].strip().split("@")[0] for line in in_node(name, "ip", "-o", "link").splitlines()}
        assert {"cilium_host", "cilium_net", "cilium_vxlan"} <= links, (name, links)
        assert not links & {"flannel.1", "cni0"}, (name, links)
        assert "vxlan" in in_node(name, "ip", "-d", "link", "show", "cilium_vxlan")
        assert in_node(name, "mount").count(" type bpf ") >= 1, f"{name} has no bpffs of its own"


@pytest.fixture(scope="module")
def pods_per_node(cilium_lab: dict[str, Any], admin_kubeconfig: str) -> Iterator[dict[str, dict[str, Any]]]:
    """A probe server pod pinned to each node (namespace deleted after)."""
    ns = f"nc-cilium-{secrets.token_hex(3)}"
    names = [item["metadata"]["name"] for item in nodes(admin_kubeconfig)]
    items: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    items += [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p-{node}", "namespace": ns},
            "spec": {
                "nodeName": node,
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
        }
        for node in names
    ]
    kubectl_admin(
        admin_kubeconfig, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    try:
        kubectl_admin(admin_kubeconfig, "-n", ns, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=120s")
        pods = json.loads(kubectl_admin(admin_kubeconfig, "-n", ns, "get", "pods", "-o", "json"))["items"]
        yield {p["spec"]["nodeName"]: {"ns": ns, **p} for p in pods}
    finally:
        subprocess.run(
            [str(STATE / "bin" / "kube"), "kubectl", f"--kubeconfig={admin_kubeconfig}", "delete", "namespace", ns,
             "--wait=false", "--ignore-not-found"], capture_output=True, timeout=120,
        )  # fmt: skip


def test_pods_get_addresses_through_cilium(pods_per_node: dict[str, dict[str, Any]], admin_kubeconfig: str) -> None:
    cidrs = {item["metadata"]["name"]: item["spec"]["podCIDR"] for item in nodes(admin_kubeconfig)}
    for node, pod in pods_per_node.items():
        ip = pod["status"]["podIP"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidrs[node]), (node, ip, cidrs[node])
        endpoints = json.loads(cilium_dbg(node, "endpoint", "list", "-o", "json"))
        mine = [
            ep
            for ep in endpoints
            if any(a.get("ipv4") == ip for a in ep["status"].get("networking", {}).get("addressing", []))
        ]
        assert mine, f"{node}'s agent has no endpoint for {pod['metadata']['name']} ({ip})"
        assert mine[0]["status"]["state"] == "ready", mine[0]["status"]["state"]
        veth = mine[0]["status"]["networking"]["interface-name"]
        assert veth.startswith("lxc"), veth
        assert veth in in_node(node, "ip", "-o", "link", "show", veth)


def test_pods_reach_each_other_across_nodes(pods_per_node: dict[str, dict[str, Any]], admin_kubeconfig: str) -> None:
    ordered = sorted(pods_per_node)
    client = pods_per_node[ordered[0]]
    targets = [
        {"id": node, "proto": "tcp", "host": pods_per_node[node]["status"]["podIP"], "port": 8080, "count": 3}
        for node in ordered[1:]
    ]
    spec = json.dumps({"timeout_ms": 3000, "concurrency": 4, "targets": targets})
    raw = kubectl_admin(
        admin_kubeconfig, "-n", client["ns"], "exec", client["metadata"]["name"], "--", "/probe", "dial", "--spec", spec
    )
    for result in json.loads(raw)["results"]:
        assert result["attempts"] and all(a["ok"] for a in result["attempts"]), result
