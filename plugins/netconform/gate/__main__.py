"""`python -m netconform.gate` (ci/gate): the upgrade gate. Before an upgrade `ci/gate baseline`, after it
`ci/gate check`, then `ci/gate close`.

  ci/gate baseline [--state DIR] [SELECTION] [-- PYTEST ARGS]
        run the suite, record its verdicts, open long-lived connections between the selected nodes:
        two DaemonSets (a server and a holder per node), every pair of nodes held by pod IP and by
        ClusterIP up to 20 nodes, above that the suite's sample (every node k times source and destination)
  ci/gate check    [--state DIR] [-- PYTEST ARGS]
        run the suite again (same nodes, same pairs), read which connections survived, compare with the
        baseline; new failures or broken connections block, fixed ones and expected churn (a gate pod
        replaced or restarted, e.g. its node removed or rebooted) are reported
  ci/gate close    [--state DIR]
        remove the gate namespace (netconform-gate)

SELECTION, as for the suite (and also read from the PYTEST ARGS): --node-selector/--nodes SELECTOR,
--node-limit N, --pairs auto|all|ring|sample, --pairs-per-node K, --pairs-seed N.

Exit codes: 0 passed (baseline: gate open); 1 blocked (check: new failures or broken connections);
2 usage (gate already open / not open, no baseline, bad kubeconfig, fewer than two nodes selected);
3 the suite or the gate could not run (missing permission, setup error, API error); 4 the state file
(DIR/gate.json) is damaged: truncated, not JSON, or not what baseline wrote (one sentence; close, then
baseline again). A state taken on another cluster (its kube-system namespace's UID) is refused (2). The summary is
printed and written to DIR/check/summary.txt. Default DIR: reports/gate in the current directory. --kubeconfig/--context work as for the suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netconform.dialing.pairs import MODES
from netconform.errors import API_ERRORS, UsageError, api_error_sentence
from netconform.workload.images import DEFAULT_IMAGES, image_ref

from . import prog
from .exits import EXIT_CANNOT_RUN, EXIT_USAGE, GateError
from .phases import DEFAULT_STATE, Selection, baseline, check, close

_DOC = __doc__ or ""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog.name,
        description=_DOC.split("\n\n")[0].replace("ci/gate", prog.name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_DOC.split("\n\n", 1)[1].replace("ci/gate", prog.name),
    )
    p.add_argument("phase", choices=("baseline", "check", "close"))
    p.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE,
        help="where the gate keeps its state (default: reports/gate in the current directory)",
    )
    p.add_argument("--kubeconfig")
    p.add_argument("--context")
    p.add_argument("--image-repo", help="pull the probe from this registry/repo (as the suite's --image-repo)")
    p.add_argument("--probe-image", help="probe image for the gate's pods (default: the suite's)")
    _selection_options(p)
    return p


_SELECTION = {
    "--node-selector": "node_selector",
    "--nodes": "node_selector",
    "--node-limit": "node_limit",
    "--pairs": "pairs",
    "--pairs-per-node": "pairs_per_node",
    "--pairs-seed": "pairs_seed",
}


def _selection_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("which nodes and pairs (the suite's options, passed on to it)")
    g.add_argument("--node-selector", "--nodes", dest="node_selector", metavar="SELECTOR")
    g.add_argument("--node-limit", type=_positive, metavar="N")
    g.add_argument("--pairs", choices=MODES)
    g.add_argument("--pairs-per-node", type=_positive, metavar="K")
    g.add_argument("--pairs-seed", type=int, metavar="N")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def split_selection(extra: list[str]) -> tuple[list[str], list[str]]:
    """The selection options among the pytest args (`--nodes X` or `--nodes=X`) and the rest."""
    picked: list[str] = []
    rest: list[str] = []
    it = iter(extra)
    for arg in it:
        name = arg.split("=", 1)[0]
        if name not in _SELECTION:
            rest.append(arg)
        elif "=" in arg:
            picked.append(arg)
        else:
            picked += [arg, next(it, "")]
    return picked, rest


def selection_of(args: argparse.Namespace, picked: list[str]) -> Selection | None:
    """The gate's own options win over those given to pytest; None when nothing was given."""
    p = argparse.ArgumentParser(prog=prog.name, add_help=False)
    _selection_options(p)
    from_pytest = p.parse_args(picked)
    given = {
        field: getattr(args, field) if getattr(args, field) is not None else getattr(from_pytest, field)
        for field in set(_SELECTION.values())
    }
    if all(v is None for v in given.values()):
        return None
    return Selection(**{k: v for k, v in given.items() if v is not None})


def main(argv: list[str] | None = None, name: str = "ci/gate") -> int:
    """The gate; `name` is how the operator started it (`netconform gate` from netconform.cli)."""
    prog.name = name
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    args = _parser().parse_args(argv)
    picked, extra = split_selection(extra)
    selection = selection_of(args, picked)
    image = image_ref(DEFAULT_IMAGES["probe"], args.image_repo, args.probe_image)
    if args.image_repo and not any(a.startswith("--image-repo") for a in extra):
        extra.append(f"--image-repo={args.image_repo}")
    try:
        if args.phase == "baseline":
            return baseline(args.state, args.kubeconfig, args.context, image, extra, selection)
        if args.phase == "check":
            return check(args.state, args.kubeconfig, args.context, extra, selection)
        return close(args.state, args.kubeconfig, args.context)
    except GateError as exc:
        print(f"{prog.name}: {exc}", file=sys.stderr)
        return exc.code
    except UsageError as exc:
        print(f"{prog.name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except API_ERRORS as exc:
        print(f"{prog.name}: {api_error_sentence(exc, 'talk to the Kubernetes API')}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print(f"{prog.name}: interrupted; the gate namespace stays until {prog.command('close')}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
