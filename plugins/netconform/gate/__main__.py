"""`python -m netconform.gate` (ci/gate): the upgrade gate. Before an upgrade `ci/gate baseline`, after it
`ci/gate check`, then `ci/gate close`.

  ci/gate baseline [--state DIR] [-- PYTEST ARGS]  run the suite, record its verdicts, open long-lived
                                                   connections between probes on every pair of nodes
  ci/gate check    [--state DIR] [-- PYTEST ARGS]  run the suite again, read which connections survived,
                                                   compare with the baseline; new failures or broken
                                                   connections block, fixed ones are reported
  ci/gate close    [--state DIR]                   remove the gate namespace (netconform-gate)

Exit codes: 0 passed (baseline: gate open); 1 blocked (check: new failures or broken connections);
2 usage (gate already open / not open, no baseline, bad kubeconfig); 3 the suite or the gate could
not run (setup error, API error). The summary is printed and written to DIR/check/summary.txt.
Default DIR: reports/gate. --kubeconfig/--context work as for the suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netconform.errors import API_ERRORS, UsageError, api_error_sentence
from netconform.workload.images import DEFAULT_IMAGES, image_ref

from .exits import EXIT_CANNOT_RUN, EXIT_USAGE, GateError
from .phases import REPO, baseline, check, close

PROG = "ci/gate"
_DOC = __doc__ or ""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=_DOC.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_DOC.split("\n\n", 1)[1],
    )
    p.add_argument("phase", choices=("baseline", "check", "close"))
    p.add_argument("--state", type=Path, default=REPO / "reports" / "gate", help="where the gate keeps its state")
    p.add_argument("--kubeconfig")
    p.add_argument("--context")
    p.add_argument("--image-repo", help="pull the probe from this registry/repo (as the suite's --image-repo)")
    p.add_argument("--probe-image", help="probe image for the gate's pods (default: the suite's)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    args = _parser().parse_args(argv)
    image = image_ref(DEFAULT_IMAGES["probe"], args.image_repo, args.probe_image)
    if args.image_repo and not any(a.startswith("--image-repo") for a in extra):
        extra.append(f"--image-repo={args.image_repo}")
    try:
        if args.phase == "baseline":
            return baseline(args.state, args.kubeconfig, args.context, image, extra)
        if args.phase == "check":
            return check(args.state, args.kubeconfig, args.context, extra)
        return close(args.state, args.kubeconfig, args.context)
    except GateError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.code
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except API_ERRORS as exc:
        print(f"{PROG}: {api_error_sentence(exc, 'talk to the Kubernetes API')}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the gate namespace stays until `ci/gate close`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
