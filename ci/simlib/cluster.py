"""Bring the simulated cluster up (or resize it), take it down, say how it is."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

from hostlib.control import apiserver_cert_args, controller_manager_cert_args, etcd_argv, service_account_args

from . import certs, config, kwok, nodes, proc
from .kwok import say
from .proc import SimError

MARKER = ".netconform-sim"  # `down` removes STATE only when this file says it is ours
BUILD_LOCK = "/tmp/netconform-lab.lock"


# ---------------------------------------------------------------- binaries


def _lab_bins() -> Path | None:
    """The newest lab build directory holding both `kube` and `etcd` (completed builds first)."""
    found = [d for d in config.LAB_CACHE.glob("bin-*") if all(os.access(d / b, os.X_OK) for b in ("kube", "etcd"))]
    found.sort(key=lambda d: ((d / ".complete").exists(), (d / "kube").stat().st_mtime), reverse=True)
    return found[0] if found else None


def find_or_build_bins() -> Path:
    found = _lab_bins()
    if found:
        return found
    say(
        "the lab's Kubernetes and etcd binaries are not built yet: building them with ci/lab-build/build.sh "
        "(about 15 minutes cold), holding the lab lock"
    )
    log = config.LOGS / "build.log"
    with open(log, "ab") as fh:
        done = subprocess.run(
            ["flock", "-w", "1800", BUILD_LOCK, "bash", str(config.REPO / "ci/lab-build/build.sh")],
            stdout=subprocess.PIPE,
            stderr=fh,
            env={**os.environ, "LAB_CACHE": str(config.LAB_CACHE)},
        )
    if done.returncode != 0:
        raise SimError(
            f"building the lab's binaries (ci/lab-build/build.sh) failed or waited over 30 min for "
            f"the lab lock; see {log}"
        )
    return Path(done.stdout.decode().strip().splitlines()[-1])


def bins() -> Path:
    link = config.STATE / "bin"
    if not link.exists():
        raise SimError("the simulated cluster is not up; run `ci/sim up --nodes N`")
    return link.resolve()


def kubectl(*args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
    return proc.run(
        [str(bins() / "kube"), "kubectl", "--kubeconfig", str(config.KUBECONFIG), "--request-timeout=60s", *args],
        input=input,
        check=check,
        timeout=timeout,
    )


# ---------------------------------------------------------------- control plane


def _start_control_plane(kube: Path, etcd: Path) -> None:
    C = config.CERTS
    api = f"https://{config.API_HOST}:{config.API_PORT}"
    proc.start(
        "etcd",
        [
            *etcd_argv(etcd, "sim", config.STATE / "etcd", config.ETCD_CLIENT, config.ETCD_PEER, 4 << 30),
            "--unsafe-no-fsync",
        ],
    )
    proc.start(
        "kube-apiserver",
        [
            str(kube),
            "kube-apiserver",
            "--etcd-servers",
            f"http://{config.ETCD_CLIENT}",
            # the advertised address may not be loopback; nothing dials it (no endpoint reconciler, no nodes)
            "--bind-address",
            config.API_HOST,
            "--advertise-address",
            config.ADVERTISE_IP,
            "--endpoint-reconciler-type",
            "none",
            "--secure-port",
            str(config.API_PORT),
            "--service-cluster-ip-range",
            config.SERVICE_CIDR,
            "--authorization-mode",
            "RBAC",
            *apiserver_cert_args(C),
            *service_account_args(C, "https://kubernetes.default.svc.cluster.local"),
            "--profiling=false",
            "--v=1",
        ],
    )
    proc.wait_for(
        "the simulated API server to answer /readyz on " + api,
        lambda: (
            proc.ensure_running("etcd")
            or proc.ensure_running("kube-apiserver")
            or kubectl("get", "--raw", "/readyz", check=False, timeout=10).strip() == "ok"
        ),
        180,
        1.0,
        log=config.LOGS / "kube-apiserver.log",
    )
    kc = str(config.KUBECONFIG)
    common = [
        "--kubeconfig",
        kc,
        "--authentication-kubeconfig",
        kc,
        "--authorization-kubeconfig",
        kc,
        "--bind-address",
        "127.0.0.1",
        "--profiling=false",
        "--v=1",
    ]
    proc.start(
        "kube-controller-manager",
        [
            str(kube),
            "kube-controller-manager",
            *common,
            "--secure-port",
            str(config.CM_PORT),
            "--service-cluster-ip-range",
            config.SERVICE_CIDR,
            "--cluster-cidr",
            config.POD_CIDR,
            *controller_manager_cert_args(C),
            "--node-monitor-grace-period",
            config.NODE_MONITOR_GRACE,
            "--kube-api-qps",
            config.API_QPS,
            "--kube-api-burst",
            config.API_BURST,
        ],
    )
    sched_cfg = config.STATE / "scheduler.yaml"
    sched_cfg.write_text(
        json.dumps(
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": kc, "qps": float(config.API_QPS), "burst": int(config.API_BURST)},
                "leaderElection": {"leaderElect": False},
            }
        )
    )
    proc.start(
        "kube-scheduler",
        [
            str(kube),
            "kube-scheduler",
            "--config",
            str(sched_cfg),
            "--authentication-kubeconfig",
            kc,
            "--authorization-kubeconfig",
            kc,
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            str(config.SCHED_PORT),
            "--profiling=false",
            "--v=1",
        ],
    )


def _start_kwok() -> None:
    binary = kwok.ensure_installed()
    cfg = config.STATE / "kwok.yaml"
    cfg.write_text(kwok.configuration())
    proc.start("kwok", kwok.start_argv(binary, cfg))


def _all_running() -> bool:
    return all(proc.pid_of(c) for c in config.COMPONENTS)


def _check_running() -> bool:
    """Raise ComponentExited if a component exited; False otherwise (for `_check_running() or ready`)."""
    for c in config.COMPONENTS:
        proc.ensure_running(c)
    return False


# ---------------------------------------------------------------- nodes


def _node_names() -> list[str]:
    out = kubectl("get", "nodes", "-o", "name", "-l", "type=kwok", timeout=120)
    return [line.split("/", 1)[1] for line in out.split() if line.startswith("node/")]


def _ready_count() -> int:
    out = kubectl("get", "nodes", "-l", "type=kwok", "--no-headers", timeout=120)
    return sum(1 for line in out.splitlines() if line.split()[1:2] == ["Ready"])


def _set_size(n: int) -> None:
    have = {config.node_index(name) for name in _node_names()}
    missing = [i for i in range(1, n + 1) if i not in have]
    extra = sorted(i for i in have if i > n)
    started = time.monotonic()
    if extra:
        # one deletecollection request (kubectl delete NAME... would send a GET and a DELETE per node)
        selector = f"{nodes.INDEX_LABEL} in ({','.join(str(i) for i in extra)})"
        kubectl("delete", "--raw", "/api/v1/nodes?" + urllib.parse.urlencode({"labelSelector": selector}), timeout=300)
        say(f"removed {len(extra)} nodes ({config.node_name(extra[0])} ..) in {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    # kubectl creates the items of a List one by one: four of them at once, 250 nodes each
    chunks = [missing[k : k + 250] for k in range(0, len(missing), 250)]
    for batch in range(0, len(chunks), 4):
        running = [
            (
                subprocess.Popen(
                    [
                        str(bins() / "kube"),
                        "kubectl",
                        "--kubeconfig",
                        str(config.KUBECONFIG),
                        "--request-timeout=60s",
                        "create",
                        "-f",
                        "-",
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                chunk,
            )
            for chunk in chunks[batch : batch + 4]
        ]
        try:
            for child, chunk in running:
                try:
                    _, err = child.communicate(nodes.node_list(chunk), timeout=300)
                except subprocess.TimeoutExpired:
                    raise SimError(
                        f"creating nodes {config.node_name(chunk[0])}.. did not finish within 300s"
                    ) from None
                if child.returncode != 0:
                    raise SimError(f"creating nodes {config.node_name(chunk[0])}.. failed: {err.strip()[:300]}")
        finally:  # also on Ctrl-C: no kubectl outlives `up`
            for child, _ in running:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        _check_running()
    if missing:
        say(f"created {len(missing)} nodes in {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    proc.wait_for(
        f"{n} simulated nodes to be Ready (KWOK plays them)",
        lambda: _check_running() or _ready_count() == n and len(_node_names()) == n,
        120 + n * 0.2,
        2.0,
        log=config.LOGS / "kwok.log",
    )
    say(f"{n} nodes Ready ({time.monotonic() - started:.1f}s after creation)")


SMOKE_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "sim-smoke", "namespace": "default"},
    "spec": {
        "nodeName": config.node_name(1),
        "automountServiceAccountToken": False,
        "containers": [{"name": "c", "image": "sim.invalid/never-pulled:0"}],
    },
}


def _smoke() -> None:
    """One pod on node 1 must become Running and Ready with an address from that node's podCIDR."""
    kubectl("delete", "pod", "-n", "default", "sim-smoke", "--ignore-not-found", "--wait=false")
    proc.wait_for(
        "the previous smoke pod to be gone",
        lambda: not kubectl("get", "pod", "-n", "default", "sim-smoke", "--ignore-not-found", "-o", "name"),
        60,
        1.0,
    )
    kubectl("create", "-f", "-", input=json.dumps(SMOKE_POD))

    def ready() -> bool:
        pod = json.loads(kubectl("get", "pod", "-n", "default", "sim-smoke", "-o", "json"))
        status = pod.get("status", {})
        ok = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        return ok and status.get("podIP", "").startswith(config.pod_cidr(1).rsplit(".", 1)[0] + ".")

    proc.wait_for(
        f"the smoke pod on {config.node_name(1)} to be Running and Ready with an address from {config.pod_cidr(1)}",
        ready,
        60,
        0.5,
        log=config.LOGS / "kwok.log",
    )
    kubectl("delete", "pod", "-n", "default", "sim-smoke", "--wait=false")


# ---------------------------------------------------------------- commands


def _interruptible(fn):
    """SIGTERM takes the Ctrl-C path, so an interrupted `up` of a new cluster removes everything it started."""
    previous = signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return fn()
    finally:
        signal.signal(signal.SIGTERM, previous)


def up(n: int) -> None:
    if not 1 <= n <= config.MAX_NODES:
        raise SimError(f"--nodes must be between 1 and {config.MAX_NODES}, not {n}")
    if (config.STATE / MARKER).exists() and not _all_running():
        say("a stopped or half-started simulated cluster is on file: removing it first")
        down()
    fresh = not (config.STATE / MARKER).exists()
    started = time.monotonic()

    def work() -> None:
        if fresh:
            config.STATE.mkdir(parents=True, exist_ok=True)
            (config.STATE / MARKER).write_text("netconform simulated cluster (ci/sim); `ci/sim down` removes it\n")
            config.LOGS.mkdir(parents=True, exist_ok=True)
            binaries = find_or_build_bins()
            (config.STATE / "bin").symlink_to(binaries)
            say(f"control plane from {binaries}; KWOK {config.KWOK_VERSION}; state in {config.STATE}")
            certs.ensure()
            _start_control_plane(binaries / "kube", binaries / "etcd")
            _start_kwok()
        _set_size(n)
        config.SIZE_FILE.write_text(f"{n}\n")
        _smoke()

    try:
        _interruptible(work)
    except (KeyboardInterrupt, SimError) as exc:
        if not fresh:
            raise
        kept = _keep_logs()
        say(f"interrupted or failed: removing what this `up` started (logs kept in {kept})")
        down(quiet=True)
        if isinstance(exc, SimError):
            raise SimError(str(exc).replace(str(config.LOGS), str(kept))) from None
        raise
    say(f"up: {n} nodes in {time.monotonic() - started:.1f}s; " + env_line())


def _keep_logs() -> Path:
    """A failed `up` removes the state directory but keeps its logs here (replaced by the next failure)."""
    dest = config.STATE.parent / "netconform-sim-failed-logs"
    shutil.rmtree(dest, ignore_errors=True)
    if config.LOGS.is_dir():
        shutil.copytree(config.LOGS, dest)
    return dest


def down(quiet: bool = False) -> None:
    """Stop every process on file by pid (KWOK first, etcd last) and remove the state directory."""
    started = time.monotonic()
    for name in config.COMPONENTS:
        proc.stop(name)
    if config.STATE.exists():
        if not (config.STATE / MARKER).exists() and any(config.STATE.iterdir()):
            raise SimError(f"{config.STATE} is not a simulated cluster's directory (no {MARKER}); not removing it")
        shutil.rmtree(config.STATE)
    if not quiet:
        say(f"down in {time.monotonic() - started:.1f}s: processes stopped, {config.STATE} removed")


def env_line() -> str:
    return f"export KUBECONFIG={config.KUBECONFIG}"


def env() -> int:
    if not config.KUBECONFIG.exists():
        raise SimError("the simulated cluster is not up; run `ci/sim up --nodes N`")
    print(env_line())
    return 0


def status() -> int:
    if not (config.STATE / MARKER).exists():
        print("simulated cluster: down")
        return 1
    bad = 0
    for name in reversed(config.COMPONENTS):
        pid = proc.pid_of(name)
        bad += pid is None
        print(f"{name:24} " + (f"pid {pid}, {proc.rss_kib(name) / 1024:.0f} MiB resident" if pid else "NOT RUNNING"))
    if not bad:
        want = int(config.SIZE_FILE.read_text()) if config.SIZE_FILE.exists() else 0
        ready = _ready_count()
        bad += ready != want
        print(f"nodes                    {ready} Ready of {want}")
        print(env_line())
    return 1 if bad else 0
