"""The Cilium variant of the lab (`ci/lab up --cni cilium`, ci/LAB.md): on each node the Cilium agent
runs instead of flanneld (VXLAN tunnel, IPAM from the node's podCIDR, kube-proxy kept), and the
cilium-cni plugin instead of flannel's chain. Built by ci/lab-build/build-cilium.sh (cached).

Per node, in its mount namespace: a bpffs of its own on /sys/fs/bpf (the node's fresh sysfs), its own
/run/cilium and /var/lib/cilium (the BPF C sources are copied there: the agent writes its feature
headers beside them and compiles with clang at run time), and as the agent's cgroup2 root a cgroup of
its own (/sys/fs/cgroup/unified/netconform-lab/<node>, bound over /run/cilium/cgroupv2). Everything
dies with the node's namespaces; `down` removes the cgroup (proc.remove_cgroup covers the v2 hierarchy). No operator runs: the lab applies the CRDs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import config, control, node, proc
from .config import Node
from .proc import LabError

BIN_LINK = config.STATE / "cilium-bin"  # the build's directory: agent, cilium-cni, cilium-dbg, bpf/, crds/
CGROUP2 = proc.CGROUP_FS / "unified"  # this machine's cgroup v2 hierarchy, mounted beside the v1 ones
AGENT_CGROUP_ROOT = "/run/cilium/cgroupv2"  # the agent's default --cgroup-root
# Machine-wide knobs the agent sets from any namespace (pkg/datapath/loader/base.go), errors ignored:
# kernel.unprivileged_bpf_disabled=1 (2 here; 1 cannot be undone before a reboot) and
# kernel.timer_migration=0. In the node's mount namespace a read-only copy of each is bound over it,
# so the agent's write fails and the machine keeps its values.
SHADOWED_SYSCTLS = ("kernel/unprivileged_bpf_disabled", "kernel/timer_migration")


def agent_name(n: Node) -> str:
    return f"{n.name}-cilium-agent"


def bins() -> Path:
    if not BIN_LINK.exists():
        raise LabError("the Cilium lab is not up (no cilium-bin); run `ci/lab up --cni cilium`")
    return BIN_LINK.resolve()


def link_bins(built: Path) -> None:
    BIN_LINK.unlink(missing_ok=True)
    BIN_LINK.symlink_to(built)


def _cgroup2(n: Node) -> Path:
    return CGROUP2 / n.cgroup


def _holder_lines(n: Node) -> str:
    d = n.dir
    lines = [
        "mount -t bpf bpffs /sys/fs/bpf",
        f"mkdir -p {d}/cilium-run/cgroupv2 {d}/sysctl-shadow",
        f"mount --bind {_cgroup2(n)} {AGENT_CGROUP_ROOT}",
    ]
    for knob in SHADOWED_SYSCTLS:
        copy = f"{d}/sysctl-shadow/{knob.replace('/', '.')}"
        lines += [
            f"cat /proc/sys/{knob} > {copy}",
            f"mount --bind {copy} /proc/sys/{knob}",
            f"mount -o remount,bind,ro /proc/sys/{knob}",
        ]
    return "\n".join(lines)


def _install(n: Node) -> None:
    built = bins()
    for plugin in ("portmap", "loopback"):
        shutil.copy2(node.CNI_PLUGINS / plugin, n.dir / "cni-bin" / plugin)
    shutil.copy2(built / "cilium-cni", n.dir / "cni-bin/cilium-cni")
    bpf = n.dir / "cilium-lib/bpf"
    if not bpf.exists():
        shutil.copytree(built / "bpf", bpf)
    _cgroup2(n).mkdir(parents=True, exist_ok=True)


# /run/cilium holds the agent's socket (cilium-cni and cilium-dbg dial it) and state; /var/lib/cilium its
# BPF sources and compiled programs.
SETUP = node.CniSetup(
    binds={"cilium-run": "/run/cilium", "cilium-lib": "/var/lib/cilium"},
    holder_lines=_holder_lines,
    install=_install,
)


def apply_crds(kubectl_bins: Path) -> None:
    """Cilium's CRDs from the module (what its operator registers); the agent waits for them."""
    # server-side: the CRDs are too large for client-side apply's last-applied annotation
    control.kubectl(
        kubectl_bins, "apply", "--server-side", "--force-conflicts", "-R", "-f", str(bins() / "crds"), timeout=120
    )


def agent_argv(n: Node) -> list[str]:
    return [
        str(bins() / "cilium-agent"),
        f"--k8s-kubeconfig-path={config.KUBECONFIG}",
        "--ipam=kubernetes",  # the node's podCIDR, allocated by the controller-manager
        "--k8s-require-ipv4-pod-cidr",
        "--routing-mode=tunnel",
        "--tunnel-protocol=vxlan",
        "--enable-ipv4",
        "--enable-ipv6=false",
        "--kube-proxy-replacement=false",  # kube-proxy stays (ci/LAB.md: what blocks the replacement)
        "--identity-allocation-mode=crd",
        "--enable-l7-proxy=false",  # no Envoy is built
        "--enable-hubble=false",
        # cilium-health needs its own endpoint and the agent's health port; not run here (ci/LAB.md)
        "--enable-health-checking=false",
        "--enable-endpoint-health-checking=false",
        f"--cgroup-root={AGENT_CGROUP_ROOT}",
        "--devices=eth0",
        # fixed, modest BPF map sizes: a lab node holds a few dozen pods (the defaults size for 64k+)
        "--bpf-ct-global-tcp-max=65536",
        "--bpf-ct-global-any-max=32768",
        "--bpf-nat-global-max=65536",
        "--bpf-policy-map-max=4096",
        "--bpf-lb-map-max=16384",
    ]


def start_agent(n: Node) -> None:
    name = agent_name(n)
    if proc.pid_of(name):
        return
    proc.start(
        name,
        node.enter(n) + agent_argv(n),
        f"{n.cgroup}/system",
        env={"K8S_NODE_NAME": n.name, "CILIUM_K8S_NAMESPACE": "kube-system"},
    )


def status_brief(n: Node) -> str:
    """`cilium-dbg status --brief` on the node ("OK" when healthy), or what it said instead."""
    return node.sh(n, f"{bins() / 'cilium-dbg'} status --brief 2>&1", check=False, timeout=30).strip()


def agent_healthy(n: Node) -> bool:
    """The agent answers healthy; raises if it exited."""
    proc.ensure_running(agent_name(n))
    return status_brief(n) == "OK"


CNI_CONF = {
    "cniVersion": "0.3.1",
    "name": "cilium",
    "plugins": [
        {"type": "cilium-cni", "log-file": "/var/run/cilium/cilium-cni.log"},
        {"type": "portmap", "capabilities": {"portMappings": True}},  # hostPort: kube-proxy is kept
    ],
}


def write_cni_conf(n: Node) -> None:
    """Once the agent is healthy (what its own --write-cni-conf-when-ready does): kubelet turns Ready then."""
    (n.dir / "cni-conf/05-cilium.conflist").write_text(json.dumps(CNI_CONF, indent=1))
