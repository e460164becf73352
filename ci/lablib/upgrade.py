"""`ci/lab upgrade VERSION`: the lab's Kubernetes upgraded the way an operator does it.

Control plane first (kube-apiserver, then kube-controller-manager, then kube-scheduler, each restarted
on the new binary and waited healthy), then node by node: cordon, evict its pods through the Eviction
API (DaemonSet pods stay, as with `kubectl drain --ignore-daemonsets`), stop kubelet and kube-proxy by
their recorded pids, start them on the new binary, wait until the node is Ready on the new kubelet and
kube-proxy answers its health check, uncordon. etcd, containerd, flanneld and the running containers
are left alone. Each step is recorded in versions.json, so an interrupted upgrade resumes where it
stopped; the phases' durations go to STATE/upgrade.json.
"""

from __future__ import annotations

import functools
import json
import re
import ssl
import time
import urllib.request
from pathlib import Path

from . import cluster, config, control, node, proc
from .cluster import say
from .config import Node
from .proc import LabError

EVICT_TIMEOUT_S = 120  # a pod's eviction accepted (a PodDisruptionBudget may refuse it for a while)
GONE_TIMEOUT_S = 120  # the evicted pods gone from the node (their grace period included)
READY_TIMEOUT_S = 120  # the node Ready on the new kubelet
HEALTH_TIMEOUT_S = 120  # a restarted component answering its health check


def check_target(target: str) -> dict[str, str]:
    """The running versions, when upgrading to `target` makes sense; else one sentence why not."""
    if not (config.STATE / "up.json").exists():
        raise LabError("the lab is not up; run `ci/lab up --version <older>` first")
    if not re.fullmatch(r"v1\.\d+\.\d+", target):
        raise LabError(f"{target!r} is not a Kubernetes version (like v1.37.2)")
    running = cluster.versions()
    newest = max(running.values(), key=config.version_key)
    oldest = min(running.values(), key=config.version_key)
    if config.version_key(target) < config.version_key(newest):
        raise LabError(f"the lab runs Kubernetes {newest} and does not downgrade to {target}")
    if oldest == target:
        raise LabError(f"the lab already runs Kubernetes {target}: nothing to upgrade")
    if config.version_key(target)[1] > config.version_key(oldest)[1] + 1:
        raise LabError(
            f"Kubernetes upgrades one minor version at a time: {oldest} goes to "
            f"v1.{config.version_key(oldest)[1] + 1}.x first, not to {target}"
        )
    available = config.kube_versions()
    if target not in available:
        raise LabError(
            f"the lab cannot build Kubernetes {target}: it builds {', '.join(available)} "
            "(an older one needs a wrapper module ci/lab-build/kube-<version>/)"
        )
    return running


def upgrade(target: str) -> dict[str, float]:
    running = check_target(target)
    var = config.variant()
    started = time.monotonic()
    phases: dict[str, float] = {}
    say(
        f"upgrading the lab from {running['control-plane']} to {target}: control plane, then "
        f"{', '.join(n.name for n in config.nodes(config.node_count()))}"
    )
    t0 = time.monotonic()
    new_bins = cluster.kube_bins(target, cluster.build())
    phases["build"] = time.monotonic() - t0
    if running["control-plane"] != target:
        t0 = time.monotonic()
        upgrade_control_plane(new_bins, target)
        phases["control-plane"] = time.monotonic() - t0
        say(f"control plane at {target} in {phases['control-plane']:.0f}s")
    for n in config.nodes(config.node_count()):
        if cluster.versions().get(n.name) == target:
            continue
        t0 = time.monotonic()
        upgrade_node(n, new_bins, target)
        phases[n.name] = time.monotonic() - t0
        say(f"{n.name} at {target} in {phases[n.name]:.0f}s")
    config.VARIANT_FILE.write_text(
        config.Variant(
            nodes=var.nodes,
            proxy_mode=var.proxy_mode,
            flannel_backend=var.flannel_backend,
            ip_family=var.ip_family,
            version=target,
        ).to_json()
    )
    phases["total"] = time.monotonic() - started
    (config.STATE / "upgrade.json").write_text(
        json.dumps(
            {"from": running["control-plane"], "to": target, "seconds": {k: round(v, 1) for k, v in phases.items()}},
            indent=1,
        )
        + "\n"
    )
    say(f"lab upgraded to {target} in {phases['total']:.0f}s")
    return phases


def _healthy(name: str, port: int) -> bool:
    return proc.ensure_running(name) or _healthz(port)


def _healthz(port: int) -> bool:
    """A control-plane component's /healthz on 127.0.0.1 (always allowed without credentials)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=5) as answer:
        return answer.status == 200 and answer.read().strip() == b"ok"


def upgrade_control_plane(new_bins: Path, target: str) -> None:
    for name, port in (
        ("kube-apiserver", None),
        ("kube-controller-manager", config.CM_PORT),
        ("kube-scheduler", config.SCHED_PORT),
    ):
        say(f"restarting {name} on {target}")
        proc.stop(name)
        control.start(new_bins)  # starts what is not running; waits for the API server's /readyz
        if port is not None:
            proc.wait_for(
                f"{name} {target} to answer /healthz on 127.0.0.1:{port}",
                functools.partial(_healthy, name, port),
                HEALTH_TIMEOUT_S,
                1.0,
                log=str(config.LOGS / f"{name}.log"),
            )
    proc.wait_for(f"the API server to report {target}", lambda: control.server_version(new_bins) == target, 30, 1.0)
    cluster.record_version("control-plane", target)


def _kubectl(*args: str, **kw) -> str:
    return control.kubectl(cluster.bin_dir(), *args, **kw)


def _pods_to_evict(name: str) -> list[dict]:
    """The pods `kubectl drain --ignore-daemonsets` would evict from node `name`: not DaemonSet pods,
    not mirror pods, not finished ones (nothing to move)."""
    doc = json.loads(_kubectl("get", "pods", "-A", "--field-selector", f"spec.nodeName={name}", "-o", "json"))
    found = []
    for pod in doc["items"]:
        meta = pod["metadata"]
        if any(ref.get("kind") == "DaemonSet" for ref in meta.get("ownerReferences", [])):
            continue
        if "kubernetes.io/config.mirror" in meta.get("annotations", {}):
            continue
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        found.append(pod)
    return found


def _evict(pod: dict) -> None:
    """POST an Eviction for the pod; retried (bounded) while a PodDisruptionBudget refuses it (429)."""
    meta = pod["metadata"]
    body = json.dumps(
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        }
    )
    path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/eviction"

    def accepted() -> bool:
        try:
            _kubectl("create", "--raw", path, "-f", "-", input=body)
        except LabError as refused:  # wait_for keeps the last refusal for its message
            if "NotFound" not in str(refused) and "not found" not in str(refused):
                raise
        return True

    proc.wait_for(
        f"the eviction of pod {meta['namespace']}/{meta['name']} to be accepted", accepted, EVICT_TIMEOUT_S, 2.0
    )


def drain(n: Node) -> list[str]:
    """Cordon n and evict its pods (DaemonSet pods stay); returns namespace/name of what was evicted."""
    _kubectl("cordon", n.name)
    pods = _pods_to_evict(n.name)
    for pod in pods:
        _evict(pod)
    uids = {pod["metadata"]["uid"] for pod in pods}
    names = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods]

    def gone() -> bool:
        doc = json.loads(_kubectl("get", "pods", "-A", "--field-selector", f"spec.nodeName={n.name}", "-o", "json"))
        return not uids & {p["metadata"]["uid"] for p in doc["items"]}

    if pods:
        proc.wait_for(f"the evicted pods ({', '.join(names)}) to leave {n.name}", gone, GONE_TIMEOUT_S, 1.0)
    return names


def _proxy_healthy(n: Node) -> bool:
    code = node.sh(
        n, "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:10256/healthz", check=False, timeout=10
    )
    return code.strip() == "200"


def _node_on(name: str, target: str) -> bool:
    doc = json.loads(_kubectl("get", "node", name, "-o", "json"))
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in doc["status"].get("conditions", []))
    return ready and doc["status"]["nodeInfo"]["kubeletVersion"] == target


def upgrade_node(n: Node, new_bins: Path, target: str) -> None:
    say(f"draining {n.name} (cordon, evict; DaemonSet pods stay)")
    evicted = drain(n)
    say(f"{n.name} drained: " + (f"evicted {', '.join(evicted)}" if evicted else "no pod to evict"))
    for component, start in (("kubelet", node.start_kubelet), ("kube-proxy", node.start_kube_proxy)):
        proc.stop(f"{n.name}-{component}")  # by its recorded pid only
        start(n, new_bins)
    proc.wait_for(
        f"{n.name} to be Ready on kubelet {target}",
        lambda: proc.ensure_running(f"{n.name}-kubelet") or _node_on(n.name, target),
        READY_TIMEOUT_S,
        1.0,
        log=str(config.LOGS / f"{n.name}-kubelet.log"),
    )
    proc.wait_for(
        f"kube-proxy {target} on {n.name} to answer /healthz on 127.0.0.1:10256",
        lambda: proc.ensure_running(f"{n.name}-kube-proxy") or _proxy_healthy(n),
        HEALTH_TIMEOUT_S,
        1.0,
        log=str(config.LOGS / f"{n.name}-kube-proxy.log"),
    )
    cluster.record_version(n.name, target)
    _kubectl("uncordon", n.name)
