"""Bringing the whole lab up and down."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import certs, cilium, config, control, images, leftovers, net, node, proc
from .config import Node
from .proc import LabError, run


def say(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def preflight(var: config.Variant) -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts and cgroups)")
    deps = ["bash", str(config.REPO / "ci/lab-build/install-deps.sh"), *(["cilium"] if var.cilium else [])]
    if subprocess.run(deps).returncode != 0:
        raise LabError("installing the lab's Debian packages failed (ci/lab-build/install-deps.sh)")
    for tool in ("ip", "nsenter", "unshare", "containerd", "runc", "ctr", "iptables", "openssl", "go"):
        if not shutil.which(tool):
            raise LabError(f"`{tool}` is missing after ci/lab-build/install-deps.sh")
    if not Path("/proc/sys/net/bridge").exists():
        raise LabError("the kernel has no br_netfilter (/proc/sys/net/bridge is missing)")
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise LabError("the kernel has no overlay filesystem, which containerd's snapshotter needs")
    if not proc.controllers():
        raise LabError("no cgroup v1 hierarchy is mounted under /sys/fs/cgroup")


def build() -> Path:
    say("building upstream binaries (cached after the first run)")
    return _run_build(["bash", str(config.REPO / "ci/lab-build/build.sh")], "building the lab's binaries")


def build_kube(version: str) -> Path:
    """The directory holding `kube` at an older version (ci/lab-build/build-kube.sh, cached per version)."""
    say(f"building Kubernetes {version} (cached after the first run)")
    return _run_build(
        ["bash", str(config.REPO / "ci/lab-build/build-kube.sh"), version], f"building Kubernetes {version}"
    )


def build_cilium() -> Path:
    """The Cilium variant's binaries, BPF sources and CRDs (ci/lab-build/build-cilium.sh, cached)."""
    say("building Cilium (cached after the first run)")
    return _run_build(["bash", str(config.REPO / "ci/lab-build/build-cilium.sh")], "building Cilium")


@dataclass
class _BuildStep:
    """What the build is building now and since when (time.monotonic())."""

    what: str
    since: float


def _run_build(argv: list[str], what_failed: str) -> Path:
    config.LOGS.mkdir(parents=True, exist_ok=True)
    log = config.LOGS / "build.log"
    # the build's progress reaches the terminal: its own lines ([build HH:MM:SS] building kube), and
    # every 30 s what it is still building and for how long (a cold build of kube takes minutes)
    current = _BuildStep("binaries", time.monotonic())

    def heartbeat(stop: threading.Event) -> None:
        while not stop.wait(30):
            say(f"still building {current.what} ({time.monotonic() - current.since:.0f}s)")

    stop = threading.Event()
    threading.Thread(target=heartbeat, args=(stop,), daemon=True).start()
    try:
        with (
            open(log, "ab") as fh,
            subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "LAB_CACHE": str(config.CACHE)}
            ) as proc,
        ):
            assert proc.stderr is not None and proc.stdout is not None
            for line in proc.stderr:
                fh.write(line)
                text = line.decode(errors="replace").rstrip()
                if text.startswith("[build "):
                    words = text.split("] ", 1)[-1]
                    if words.startswith("building "):
                        current.what, current.since = words.removeprefix("building "), time.monotonic()
                    say(words)
            out = proc.stdout.read()
    finally:
        stop.set()
    if proc.returncode != 0:
        raise LabError(f"{what_failed} failed; see {log}")
    return Path(out.decode().strip().splitlines()[-1])


def bin_dir() -> Path:
    path = config.STATE / "bin"
    if not path.exists():
        raise LabError("the lab is not up; run `ci/lab up`")
    return path.resolve()


def kube_bins(version: str, bins: Path) -> Path:
    """The binaries the Kubernetes components of `version` run from: the build's own directory at
    versions.env's version; for an older one, STATE/bin-<version>/ (links to the build's etcd, flanneld,
    ... and to that version's `kube`, so each process's command line names its version)."""
    if version == config.KUBE_VERSION:
        return bins
    if version not in config.kube_versions():
        raise LabError(
            f"the lab cannot build Kubernetes {version}: it builds "
            f"{', '.join(config.kube_versions())} (an older one needs ci/lab-build/kube-<version>/)"
        )
    kube = build_kube(version) / "kube"
    out = config.STATE / f"bin-{version}"
    out.mkdir(parents=True, exist_ok=True)
    for target in [*(p for p in bins.iterdir() if p.name != "kube" and not p.name.startswith(".")), kube]:
        link = out / target.name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return out


def running_bins(version: str) -> Path:
    """The binaries of a version the running lab already uses (for a restart): no build."""
    if version == config.KUBE_VERSION:
        return bin_dir()
    path = config.STATE / f"bin-{version}"
    if not (path / "kube").exists():
        raise LabError(f"the lab has no binaries of Kubernetes {version} ({path}); run `ci/lab up --version {version}`")
    return path


def node_bins(name: str) -> Path:
    """The binaries node `name`'s kubelet and kube-proxy run from now (its version, for a restart)."""
    return running_bins(versions().get(name, config.KUBE_VERSION))


def versions() -> dict[str, str]:
    """What each part runs: {"control-plane": v, "lab-node-1": v, ...}; a lab brought up before
    versions.json existed runs the variant's version everywhere."""
    if config.VERSIONS_FILE.exists():
        return json.loads(config.VERSIONS_FILE.read_text())
    version = config.variant().version
    return {"control-plane": version, **{n.name: version for n in config.nodes(config.node_count())}}


def record_version(part: str, version: str) -> None:
    found = versions()
    found[part] = version
    config.VERSIONS_FILE.write_text(json.dumps(found, indent=1) + "\n")


def _node_json(bins: Path, name: str) -> dict:
    return json.loads(control.kubectl(bins, "get", "node", name, "-o", "json"))


def _pod_cidr(bins: Path, n: Node) -> str:
    """The node's podCIDR once it registered with one ("" before); raises if its kubelet exited."""
    proc.ensure_running(f"{n.name}-kubelet")
    cidr: str = _node_json(bins, n.name)["spec"].get("podCIDR") or ""
    return cidr


def _subnet_leased(n: Node) -> bool:
    return proc.ensure_running(f"{n.name}-flanneld") or (n.dir / "flannel/subnet.env").exists()


def _node_ready(bins: Path, n: Node) -> bool:
    return _ready(_node_json(bins, n.name))


def _ready(doc: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in doc["status"].get("conditions", []))


def _any_part_running() -> bool:
    """Whether any process the lab recorded still runs (the very process: pid and start time)."""
    return config.PIDS.exists() and any(proc.pid_of(p.stem) for p in config.PIDS.glob("*.pid"))


def refuse_other_shape(var: config.Variant) -> None:
    """A running lab of another shape is someone's: never replace it implicitly. One with nothing left
    running (the machine restarted under it) is no one's: `up` cleans it up like a half-finished lab."""
    if config.node_count() and config.variant() != var and _any_part_running():
        raise LabError(f"a lab of another shape is up ({config.variant().describe()}); run `ci/lab down` first")


def up(var: config.Variant, healthy: Callable[[], bool]) -> None:
    """Bring the lab of shape `var` up; `healthy` says whether the lab already up is (`ci/lab status`)."""
    started = time.monotonic()
    count = var.nodes
    preflight(var)
    refuse_other_shape(var)
    if config.STATE.exists() and healthy():
        _refresh_images()
        say(f"the lab is already up: {var.describe()}")
        return
    if config.STATE.exists() or leftovers.found():
        say("cleaning up what a stopped or half-finished lab left behind")
        down()
        if left := leftovers.found():
            raise LabError(f"cleaning up before `up` {leftovers.sentence(left)}")
    net.preflight()
    say(f"bringing up {var.describe()}")
    bins = build()
    config.STATE.mkdir(parents=True, exist_ok=True)
    config.VARIANT_FILE.write_text(var.to_json())
    link = config.STATE / "bin"
    link.unlink(missing_ok=True)
    link.symlink_to(bins)
    kbins = kube_bins(var.version, bins)
    if var.cilium:
        cilium.link_bins(build_cilium())
    config.VERSIONS_FILE.write_text(
        json.dumps({"control-plane": var.version, **{n.name: var.version for n in config.nodes(count)}}, indent=1)
        + "\n"
    )
    say("building images")
    archives = images.build(bins)
    nodes = config.nodes(count)
    certs.ensure([n.name for n in nodes])
    _raise_inotify_limit(count)
    say("wiring namespaces")
    net.up_switch()
    for n in nodes:
        net.up_node(n)
    say("starting the control plane")
    proc.make_cgroup(config.CGROUP_ROOT)
    control.start(kbins)
    if var.cilium:
        cilium.apply_crds(bins)
    for n in nodes:
        say(f"starting {n.name}")
        node.start_namespace(n, cilium.SETUP if var.cilium else node.FLANNEL)
        node.start_containerd(n, archives)
        node.start_kubelet(n, kbins)
    pod_cidrs = {}
    for n in nodes:
        pod_cidrs[n] = proc.wait_for(
            f"{n.name} to register with a podCIDR",
            functools.partial(_pod_cidr, bins, n),
            120,
            1.0,
            log=str(config.LOGS / f"{n.name}-kubelet.log"),
        )
        if var.cilium:
            cilium.start_agent(n)
        else:
            node.start_flanneld(n, bins)
        node.start_kube_proxy(n, kbins)
    net.route_control_plane(pod_cidrs)
    for n in nodes:
        if var.cilium:
            # the first start compiles the datapath's BPF programs with clang: minutes on a loaded machine
            proc.wait_for(
                f"the Cilium agent on {n.name} to report healthy (cilium-dbg status)",
                functools.partial(cilium.agent_healthy, n),
                600,
                3.0,
                log=str(config.LOGS / f"{cilium.agent_name(n)}.log"),
            )
            cilium.write_cni_conf(n)
        else:
            proc.wait_for(
                f"flanneld on {n.name} to lease a subnet",
                functools.partial(_subnet_leased, n),
                60,
                log=str(config.LOGS / f"{n.name}-flanneld.log"),
            )
        proc.wait_for(
            f"{n.name} to be Ready",
            functools.partial(_node_ready, bins, n),
            120,
            1.0,
            log=str(config.LOGS / f"{n.name}-kubelet.log"),
        )
    problems = net.isolation_problems()
    if problems:
        raise LabError("the lab is not sealed off from the machine's network: " + "; ".join(problems))
    say("deploying CoreDNS")
    control.deploy_coredns(bins)
    # Where kubeadm clusters keep kube-proxy's configuration; tools (and netconform's report) read the mode there.
    proxy_conf = control.kubectl(
        bins,
        "-n",
        "kube-system",
        "create",
        "configmap",
        "kube-proxy",
        "--dry-run=client",
        "-o",
        "json",
        f"--from-file=config.conf={nodes[0].dir / 'etc/kube-proxy.json'}",
    )
    control.kubectl(bins, "apply", "-f", "-", input=proxy_conf)
    _check_published_proxy_mode(bins, var)
    proc.wait_for(
        "CoreDNS to be Ready",
        lambda: (
            control.kubectl(
                bins,
                "-n",
                "kube-system",
                "get",
                "deploy",
                "coredns",
                "-o",
                "jsonpath={.status.readyReplicas}",
                check=False,
            ).strip()
            == "2"
        ),
        180,
        2.0,
    )
    (config.STATE / "up.json").write_text(json.dumps({"nodes": count, "seconds": round(time.monotonic() - started)}))
    say(f"lab up in {time.monotonic() - started:.0f}s: {var.describe()}")


def _check_published_proxy_mode(bins: Path, var: config.Variant) -> None:
    """kube-system/kube-proxy says the mode that runs (tools and netconform's report read it there)."""
    conf = json.loads(
        control.kubectl(
            bins, "-n", "kube-system", "get", "configmap", "kube-proxy", "-o", "jsonpath={.data.config\\.conf}"
        )
    )
    if conf.get("mode") != var.proxy_mode:
        raise LabError(f"kube-system/kube-proxy says mode {conf.get('mode')!r}, but kube-proxy runs {var.proxy_mode}")


# Each node's kubelet, kube-proxy and containerd hold about 8 inotify instances, and the limit is per user
# (root, machine-wide): 128 by default, which a 12-node lab would nearly exhaust. `up` raises it when the
# lab needs more and `down` puts back the value it found (HOST_SYSCTLS records both).
INOTIFY = "fs.inotify.max_user_instances"
HOST_SYSCTLS = config.STATE / "host-sysctls.json"


def _raise_inotify_limit(count: int) -> None:
    was = int(run(["sysctl", "-n", INOTIFY]).strip())
    want = 64 + 16 * count
    if was >= want:
        return
    HOST_SYSCTLS.write_text(json.dumps({INOTIFY: {"was": was, "set": want}}))
    run(["sysctl", "-qw", f"{INOTIFY}={want}"])
    say(f"raised {INOTIFY} from {was} to {want} for {count} nodes (down restores it)")


def _restore_host_sysctls() -> None:
    if not HOST_SYSCTLS.exists():
        return
    for key, entry in json.loads(HOST_SYSCTLS.read_text()).items():
        if run(["sysctl", "-n", key]).strip() == str(entry["set"]):  # nobody changed it since
            run(["sysctl", "-qw", f"{key}={entry['was']}"])
    HOST_SYSCTLS.unlink()


def _refresh_images() -> None:
    """A running lab whose build inputs changed (say, the probe) gets the new images imported."""
    bins = build()
    link = config.STATE / "bin"
    if link.resolve() == bins:
        return
    say("build inputs changed: importing the new images into every node")
    archives = images.build(bins)
    for n in config.nodes(config.node_count()):
        node.import_images(n, archives)
    link.unlink()
    link.symlink_to(bins)


def down(keep_logs: bool = False) -> None:
    """Stop every lab process by pid, remove namespaces, cgroups and files; a no-op when nothing is there."""
    if config.PIDS.exists():
        proc.kill_cgroup(config.CGROUP_ROOT)
        for pidfile in config.PIDS.glob("*.pid"):
            proc.stop(pidfile.stem)  # anything that escaped the cgroup, by its recorded pid
    proc.remove_cgroup(config.CGROUP_ROOT)
    net.down()
    _restore_host_sysctls()
    node.remove_created_host_dirs()
    if config.STATE.exists():
        if keep_logs:
            for child in config.STATE.iterdir():
                if child.name != "logs":
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            shutil.rmtree(config.STATE)


def node_by_name(name: str) -> Node:
    for n in config.nodes(config.node_count()):
        if name in (n.name, str(n.index)):
            return n
    raise LabError(
        f"no lab node named {name}; the nodes are " + ", ".join(n.name for n in config.nodes(config.node_count()))
    )


def run_in_node(n: Node, argv: list[str], check: bool = True) -> str:
    return run(["ip", "netns", "exec", n.netns, *argv], check=check)
