"""ci/sim: command line."""

from __future__ import annotations

import argparse
import os
import sys

from . import cluster, config
from .proc import SimError

USAGE = """\
ci/sim up [--nodes N]   # etcd + API server + controller-manager + scheduler on loopback, KWOK, N simulated nodes
                        # (default 100); again with another N resizes it in place
ci/sim env              # export KUBECONFIG=...
ci/sim status           # processes, memory, nodes Ready; exit 1 when anything is off
ci/sim kubectl ARGS     # kubectl against the simulated cluster
ci/sim down             # stop every process by pid, remove the state directory; idempotent
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ci/sim", description="A simulated cluster for what needs no packets.", usage=USAGE
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("--nodes", type=int, default=100)
    sub.add_parser("down")
    sub.add_parser("env")
    sub.add_parser("status")
    p_k = sub.add_parser("kubectl")
    p_k.add_argument("args", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("ci/sim: run as root (it writes to /var/lib and /var/cache)", file=sys.stderr)
        return 2
    try:
        if opts.cmd == "up":
            cluster.up(opts.nodes)
        elif opts.cmd == "down":
            cluster.down()
        elif opts.cmd == "env":
            return cluster.env()
        elif opts.cmd == "status":
            return cluster.status()
        elif opts.cmd == "kubectl":
            kube = str(cluster.bins() / "kube")
            os.execv(kube, [kube, "kubectl", "--kubeconfig", str(config.KUBECONFIG), *opts.args])
    except SimError as exc:
        print(f"ci/sim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ci/sim: interrupted", file=sys.stderr)
        return 130
    return 0
