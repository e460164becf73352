"""`ci/lab`: bring the netconform lab up and down, inspect it, inject faults."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from . import cilium, cluster, config, faults, lab_status, leftovers, node, proc, smoke, statelock, upgrade
from .proc import LabError

RESTARTABLE = {
    "kubelet": node.start_kubelet,
    "flanneld": node.start_flanneld,
    "kube-proxy": node.start_kube_proxy,
    "cilium-agent": lambda n, bins: cilium.start_agent(n),  # the Cilium lab's (its own build)
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (e.g. from `timeout`) cleans up like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="ci/lab", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build (cached) and start an N-node lab, then run the smoke check")
    up.add_argument("--nodes", type=int, default=3, help=f"1 to {config.MAX_NODES} (default 3)")
    up.add_argument("--proxy-mode", default="iptables", help="kube-proxy mode: iptables (default) or nftables")
    up.add_argument("--flannel-backend", default="vxlan", help="flannel backend: vxlan (default) or host-gw")
    up.add_argument("--ip-family", default="ipv4", help="ipv4 (default) or dual (IPv4 + IPv6)")
    up.add_argument("--cni", default="flannel", help="flannel (default) or cilium (VXLAN tunnel; ci/LAB.md)")
    up.add_argument(
        "--version",
        default=config.KUBE_VERSION,
        help=f"Kubernetes version: {' or '.join(config.kube_versions())} (default {config.KUBE_VERSION})",
    )
    up.add_argument("--no-smoke", action="store_true")
    up.add_argument("--keep-on-failure", action="store_true", help="leave a failed lab running to debug it")
    upg = sub.add_parser(
        "upgrade",
        help="upgrade the running lab's Kubernetes: control plane, then node by "
        "node (drain, new kubelet + kube-proxy, uncordon)",
    )
    upg.add_argument("version", help=f"a newer version than the running one: {' or '.join(config.kube_versions())}")
    upg.add_argument("--no-smoke", action="store_true")
    sub.add_parser("down", help="stop everything the lab started and remove its namespaces, cgroups, files")
    sub.add_parser("status", help="processes, nodes and isolation")
    sub.add_parser("env", help="print the export line for KUBECONFIG")
    sub.add_parser("smoke", help="run the smoke check against the running lab")
    logs = sub.add_parser("logs", help="print a component's log")
    logs.add_argument(
        "component",
        help="etcd, kube-apiserver, kube-controller-manager, kube-scheduler, "
        "containerd, kubelet, flanneld (cilium-agent on the Cilium lab), kube-proxy, build",
    )
    logs.add_argument("--node", default="lab-node-1")
    restart = sub.add_parser("restart", help="restart a node component (an upgrade's rolling restart)")
    restart.add_argument("component", choices=sorted(RESTARTABLE))
    restart.add_argument("--node", default="lab-node-1")
    fault = sub.add_parser("fault", help="inject a fault (NAME --node X), `clear` them, or --list")
    fault.add_argument("name", nargs="?")
    fault.add_argument("--node", default="lab-node-1")
    fault.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "up":
            _variant(args)  # a bad ask is refused at once, not after waiting for the lock
        if _changes_the_lab(args):
            with statelock.held(_command_line(args)):
                return _dispatch(args)
        return _dispatch(args)
    except LabError as err:
        print(f"ci/lab {args.cmd}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ci/lab {args.cmd}: interrupted", file=sys.stderr)
        return 130


def _changes_the_lab(args: argparse.Namespace) -> bool:
    """Whether the command changes the lab (then it holds the state lock: one at a time, statelock.py)."""
    if args.cmd == "fault":
        return bool(args.name) and not args.list
    return args.cmd in ("up", "down", "upgrade", "restart")


def _command_line(args: argparse.Namespace) -> str:
    """How the lock names a command to whoever waits for it: "down", "fault stale-arp", "restart kubelet"."""
    return " ".join([args.cmd, *([args.name] if args.cmd == "fault" else []),
                     *([args.component] if args.cmd == "restart" else [])])  # fmt: skip


def _variant(args: argparse.Namespace) -> config.Variant:
    """The lab shape asked for, or one sentence saying what is wrong with the ask."""
    if not 1 <= args.nodes <= config.MAX_NODES:
        raise LabError(f"--nodes takes 1 to {config.MAX_NODES}, not {args.nodes}")
    if args.proxy_mode == "ipvs":
        if not Path("/proc/net/ip_vs").exists():
            raise LabError(
                "--proxy-mode ipvs is not available: this machine's kernel has no IPVS (ip_vs), "
                "so the lab runs kube-proxy in iptables or nftables mode only"
            )
        raise LabError("--proxy-mode ipvs is not supported by the lab; use iptables or nftables")
    for flag, value, allowed in (
        ("--proxy-mode", args.proxy_mode, config.PROXY_MODES),
        ("--flannel-backend", args.flannel_backend, config.FLANNEL_BACKENDS),
        ("--ip-family", args.ip_family, config.IP_FAMILIES),
        ("--cni", args.cni, config.CNIS),
    ):
        if value not in allowed:
            raise LabError(f"{flag} takes {' or '.join(allowed)}, not {value!r}")
    if args.cni == "cilium" and args.flannel_backend != "vxlan":
        raise LabError("--flannel-backend is flannel's: the Cilium lab tunnels with VXLAN and runs no flanneld")
    if args.cni == "cilium" and args.ip_family != "ipv4":
        raise LabError("the Cilium lab is IPv4 only (its dual-stack variant is not built yet)")
    if args.version not in config.kube_versions():
        raise LabError(
            f"--version takes {' or '.join(config.kube_versions())} (the versions the lab has a wrapper "
            f"module for in ci/lab-build/), not {args.version!r}"
        )
    return config.Variant(
        nodes=args.nodes,
        proxy_mode=args.proxy_mode,
        flannel_backend=args.flannel_backend,
        ip_family=args.ip_family,
        version=args.version,
        cni=args.cni,
    )


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "up":
        var = _variant(args)
        cluster.refuse_other_shape(var)  # before the try: a refusal must not take the other lab down
        try:
            cluster.up(var, lambda: lab_status.status()[1])
            if not args.no_smoke:
                smoke.check_or_explain()
        except (LabError, KeyboardInterrupt):
            if args.keep_on_failure:
                raise
            # Nothing half-running: stop it all, but keep the logs the error message points at.
            cluster.down(keep_logs=True)
            raise
        print(f"export KUBECONFIG={config.KUBECONFIG}")
    elif args.cmd == "upgrade":
        upgrade.upgrade(args.version)
        if not args.no_smoke:
            smoke.check_or_explain()
    elif args.cmd == "down":
        cluster.down()
        if left := leftovers.found():  # never a silent partial down
            raise LabError(f"the lab is stopped, but {leftovers.sentence(left)}")
        print("lab down")
    elif args.cmd == "status":
        lines, healthy = lab_status.status()
        if not healthy and not (config.STATE / "up.json").exists() and (left := leftovers.found()):
            lines.append(f"{leftovers.sentence(left)} (`ci/lab down` removes them)")
        try:
            print("\n".join(lines), flush=True)
        except BrokenPipeError:  # `ci/lab status | head -1`: the reader has what it wanted; the verdict stands
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0 if healthy else 1
    elif args.cmd == "env":
        if not config.KUBECONFIG.exists():
            raise LabError("the lab is not up; run `ci/lab up`")
        print(f"export KUBECONFIG={config.KUBECONFIG}")
    elif args.cmd == "smoke":
        smoke.check_or_explain()
    elif args.cmd == "logs":
        control_plane = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "build")
        name = (
            args.component
            if args.component in control_plane
            else f"{cluster.node_by_name(args.node).name}-{args.component}"
        )
        path = config.LOGS / f"{name}.log"
        if not path.exists():
            raise LabError(f"no log {path}")
        os.execvp("cat", ["cat", str(path)])
    elif args.cmd == "restart":
        target = cluster.node_by_name(args.node)
        agent = {"flanneld": "flannel", "cilium-agent": "cilium"}.get(args.component)
        if agent and agent != config.variant().cni:
            raise LabError(f"this lab runs {config.variant().cni}: it has no {args.component} to restart")
        proc.stop(f"{target.name}-{args.component}")
        bins = cluster.bin_dir() if args.component == "flanneld" else cluster.node_bins(target.name)
        RESTARTABLE[args.component](target, bins)
        print(f"restarted {args.component} on {target.name}")
    elif args.cmd == "fault":
        if args.list or not args.name:
            print("\n".join(faults.listing()))
        elif args.name == "clear":
            print("\n".join(faults.clear()))
        else:
            print(faults.inject(args.name, args.node))
    return 0
