"""The `netconform` console command: the shipped suites against the current kubeconfig context.

    netconform run [--context X] [--kubeconfig F] [-- PYTEST_ARGS...]   the suite (exit code: pytest's)
    netconform checks                                                   what the suite checks, no cluster needed
    netconform rbac                                                     the ServiceAccount and roles to apply
    netconform gate ...  /  netconform report ...                       the upgrade gate and the HTML report
    netconform version  /  netconform --version

Results go below the current directory (reports/), as they do in a clone.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from netconform.gate.__main__ import main as gate_main
from netconform.installed import suites_dir
from netconform.plugin.checks import list_checks
from netconform.report.__main__ import main as report_main

__all__ = ["main"]


def _run(args: argparse.Namespace, rest: list[str]) -> int:
    argv = [str(suites_dir()), "--rootdir", str(Path.cwd()), "-p", "no:cacheprovider"]
    if args.kubeconfig:
        argv.append(f"--kubeconfig={args.kubeconfig}")
    if args.context:
        argv.append(f"--context={args.context}")
    return int(pytest.main(argv + rest))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gate"]:
        return gate_main(argv[1:], name="netconform gate")
    if argv[:1] == ["report"]:
        return report_main(argv[1:])
    rest: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="netconform", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"netconform {version('netconform')}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run the shipped suites (pytest options after --)",
        description="Run the shipped suites against a cluster; results go below the current directory "
        "(reports/). Exit code: pytest's (0 every check passed, 1 some failed, 4 the run could not start).",
        epilog="pytest and netconform options go after --, e.g. `netconform run -- -k dns --junitxml "
        "reports/junit.xml`; `netconform run -- --help` lists them all.",
    )
    run.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    run.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current context)")
    sub.add_parser("checks", help="list what the suites check (no cluster needed)")
    sub.add_parser("rbac", help="print the RBAC manifest the suite needs (kubectl apply -f -)")
    sub.add_parser("gate", help="the upgrade gate: netconform gate --help")
    sub.add_parser("report", help="render the HTML report: netconform report --help")
    sub.add_parser("version", help="print the version")
    args, unknown = parser.parse_known_args(argv)
    if args.command == "run":
        return _run(args, unknown + rest)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "checks":
        print("\n".join(list_checks(suites_dir())))
    elif args.command == "rbac":
        print((suites_dir() / "rbac.yaml").read_text(), end="")
    else:
        print(f"netconform {version('netconform')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
