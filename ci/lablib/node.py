"""One lab node: a network namespace plus its own mount namespace, running containerd, kubelet,
flanneld (or the Cilium agent: cilium.py) and kube-proxy. A holder process keeps the mount namespace alive; every component
of the node enters it with nsenter, so kubelet's volume mounts are visible to containerd."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import config, images, proc
from .config import Node
from .proc import LabError, run

CNI_PLUGINS = Path("/usr/lib/cni")
# Per-node directories bound over the host paths inside the node's mount namespace.
BINDS = {
    "kubelet": "/var/lib/kubelet",
    "pods-log": "/var/log/pods",
    "containers-log": "/var/log/containers",
    "containerd": "/var/lib/containerd",
    "run-containerd": "/run/containerd",
    "cni-conf": "/etc/cni/net.d",
    "cni-state": "/var/lib/cni",
    "cni-bin": "/opt/cni/bin",
    "netns": "/run/netns",
}


@dataclass(frozen=True)
class CniSetup:
    """What a node's CNI adds to its namespace: directories bound over host paths, mounts made by the
    holder (shell lines, run before the namespace turns shared), and files it installs before containerd."""

    binds: dict[str, str]
    holder_lines: Callable[[Node], str] = lambda node: ""
    install: Callable[[Node], None] = lambda node: None


def _install_flannel(node: Node) -> None:
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        shutil.copy2(CNI_PLUGINS / plugin, node.dir / "cni-bin" / plugin)
    shutil.copy2(config.REPO / "ci/lab-build/cni/flannel", node.dir / "cni-bin/flannel")
    (node.dir / "cni-conf/10-flannel.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "0.3.1",
                "name": "cbr0",
                "plugins": [
                    {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            },
            indent=1,
        )
    )


FLANNEL = CniSetup(binds={"flannel": "/run/flannel"}, install=_install_flannel)


def holder_name(node: Node) -> str:
    return f"{node.name}-ns"


def _holder_script(node: Node, cni: CniSetup) -> str:
    d = node.dir
    binds = "\n".join(
        f"mkdir -p {d / src} {dst}; mount --bind {d / src} {dst}" for src, dst in {**BINDS, **cni.binds}.items()
    )
    return f"""set -e
mkdir -p {d}/cgroup-keep
mount --rbind /sys/fs/cgroup {d}/cgroup-keep
mount -t sysfs sysfs /sys
mount --rbind {d}/cgroup-keep /sys/fs/cgroup
umount -l {d}/cgroup-keep
{binds}
mount --bind {d}/machine-id /etc/machine-id
{cni.holder_lines(node)}
mount --make-rshared /
touch {d}/ns-ready
exec sleep infinity
"""


def _created_dirs() -> Path:
    return config.STATE / "created-host-dirs"


def _note_missing_host_dirs(binds: dict[str, str]) -> None:
    """Bind targets that do not exist on the host get created; remember them so down removes them."""
    missing = [str(p) for dst in binds.values() for p in [Path(dst), *Path(dst).parents] if not p.exists()]
    known = set(_created_dirs().read_text().split()) if _created_dirs().exists() else set()
    _created_dirs().write_text("\n".join(sorted(known | set(missing))) + "\n")


def remove_created_host_dirs() -> None:
    if not _created_dirs().exists():
        return
    for path in sorted(_created_dirs().read_text().split(), key=len, reverse=True):
        with contextlib.suppress(OSError):
            Path(path).rmdir()
    _created_dirs().unlink()


def enter(node: Node) -> list[str]:
    pid = proc.pid_of(holder_name(node))
    if pid is None:
        raise LabError(f"{node.name} is not running (its namespace holder is gone); run `ci/lab up`")
    return ["nsenter", "-t", str(pid), "--net", "--mount", "--"]


def sh(node: Node, script: str, check: bool = True, timeout: float = 30) -> str:
    return run(enter(node) + ["sh", "-c", script], check=check, timeout=timeout)


def start_namespace(node: Node, cni: CniSetup = FLANNEL) -> None:
    if proc.pid_of(holder_name(node)):
        return
    for sub in [*BINDS, *cni.binds, "etc"]:
        (node.dir / sub).mkdir(parents=True, exist_ok=True)
    (node.dir / "machine-id").write_text(f"{node.index:032x}\n")
    (node.dir / "ns-ready").unlink(missing_ok=True)
    cni.install(node)
    _note_missing_host_dirs({**BINDS, **cni.binds})
    proc.start(
        holder_name(node),
        [
            "nsenter",
            f"--net=/run/netns/{node.netns}",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            _holder_script(node, cni),
        ],
        node.cgroup,
    )
    proc.wait_for(
        f"{node.name}'s mount namespace",
        lambda: (node.dir / "ns-ready").exists() or proc.ensure_running(holder_name(node)),
        20,
        log=str(config.LOGS / f"{holder_name(node)}.log"),
    )


def _containerd_config(node: Node) -> Path:
    path = node.dir / "etc/containerd.toml"
    path.write_text(f"""version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{node.dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{config.IMAGES["pause"]}"
  disable_apparmor = true
  # This machine withholds CAP_SYS_RESOURCE, so no process may lower its oom_score_adj (the sandbox's -998).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
""")
    return path


def start_containerd(node: Node, images: list[Path]) -> None:
    name = f"{node.name}-containerd"
    if not proc.pid_of(name):
        proc.start(
            name, enter(node) + ["containerd", "--config", str(_containerd_config(node))], f"{node.cgroup}/system"
        )
    proc.wait_for(
        f"containerd on {node.name}",
        lambda: proc.ensure_running(name) or node.containerd_sock.exists(),
        30,
        log=str(config.LOGS / f"{name}.log"),
    )
    import_images(node, images)


def import_images(node: Node, archives: list[Path]) -> None:
    images.import_into(node.containerd_sock, archives)


def _kubelet_config(node: Node) -> Path:
    (node.dir / "etc/resolv.conf").write_text("# the lab resolves nothing outside the cluster\n")
    cfg = {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "address": node.ip,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(config.CERTS / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{node.cgroup}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "protectKernelDefaults": False,
        "clusterDNS": [config.DNS_IP],
        "clusterDomain": config.CLUSTER_DOMAIN,
        "resolvConf": str(node.dir / "etc/resolv.conf"),
        # Every node shares one disk: never evict or garbage-collect because of it.
        "evictionHard": {"nodefs.available": "0%", "nodefs.inodesFree": "0%", "imagefs.available": "0%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "serializeImagePulls": False,
        "localStorageCapacityIsolation": False,
    }
    path = node.dir / "etc/kubelet.json"
    path.write_text(json.dumps(cfg, indent=1))
    return path


def start_kubelet(node: Node, bin_dir: Path) -> None:
    name = f"{node.name}-kubelet"
    if proc.pid_of(name):
        return
    proc.start(
        name,
        enter(node)
        + [
            str(bin_dir / "kube"),
            "kubelet",
            "--config",
            str(_kubelet_config(node)),
            "--kubeconfig",
            str(config.CERTS / f"kubelet-{node.name}.kubeconfig"),
            "--hostname-override",
            node.name,
            "--node-ip",
            ",".join(node.node_ips(config.variant())),
            "--v=1",
        ],
        f"{node.cgroup}/system",
    )


UNDERLAY_MTU = 1500  # the nodes' eth0 (veth pairs to the lab bridge)


def flannel_net_conf(var: config.Variant) -> dict:
    """flannel's net-conf.json for the variant: the backend, and IPv6 beside IPv4 on dual-stack."""
    conf: dict = {"Network": config.POD_CIDR, "Backend": {"Type": var.flannel_backend}}
    if var.dual:
        conf.update({"EnableIPv6": True, "IPv6Network": config.POD_CIDR6})
        if var.flannel_backend == "vxlan":
            # flannel gives pods the IPv4 overlay's MTU (1500 - 50) while the kernel caps flannel-v6.1 at
            # 1500 - 70: IPv6 datagrams at the pod MTU would not fit. Operators set the backend MTU (flannel
            # issue 1781); 1480 makes both devices and the pods 1430.
            conf["Backend"]["MTU"] = UNDERLAY_MTU - 20
    return conf


def start_flanneld(node: Node, bin_dir: Path) -> None:
    name = f"{node.name}-flanneld"
    if proc.pid_of(name):
        return
    net_conf = node.dir / "etc/net-conf.json"
    net_conf.write_text(json.dumps(flannel_net_conf(config.variant())))
    proc.start(
        name,
        enter(node)
        + [
            str(bin_dir / "flanneld"),
            "--kube-subnet-mgr",
            "--kubeconfig-file",
            str(config.KUBECONFIG),
            "--iface",
            "eth0",
            "--ip-masq",
            "--net-config-path",
            str(net_conf),
            "--subnet-file",
            "/run/flannel/subnet.env",
        ],
        f"{node.cgroup}/system",
        env={"NODE_NAME": node.name, "POD_NAME": "", "POD_NAMESPACE": ""},
    )


def start_kube_proxy(node: Node, bin_dir: Path) -> None:
    name = f"{node.name}-kube-proxy"
    if proc.pid_of(name):
        return
    var = config.variant()
    cfg = {
        "kind": "KubeProxyConfiguration",
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "clientConnection": {"kubeconfig": str(config.KUBECONFIG)},
        # nftables mode runs `nft` (Debian's nftables package, ci/lab-build/install-deps.sh).
        "mode": var.proxy_mode,
        "clusterCIDR": ",".join(var.pod_cidrs),
        "hostnameOverride": node.name,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # nf_conntrack_max is read-only outside the initial network namespace: leave conntrack alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    path = node.dir / "etc/kube-proxy.json"
    path.write_text(json.dumps(cfg, indent=1))
    proc.start(
        name,
        enter(node) + [str(bin_dir / "kube"), "kube-proxy", "--config", str(path), "--v=1"],
        f"{node.cgroup}/system",
    )
