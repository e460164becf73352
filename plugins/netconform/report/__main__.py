"""`python -m netconform.report` (ci/report): render the Allure results of a suite run into one
self-contained HTML file.

  ci/report                              reports/allure-results -> reports/report.html
  ci/report --results DIR --output FILE  other places
  ci/report --check                      also open it in headless Chromium and check that it shows the
                                         tests, a failed test's diagnosis and the node x node matrix
  ci/report --screenshot PNG [--show failed|overview|matrix]   a screenshot made that way
  ci/report --install-browser            install Debian's chromium (used by --check/--screenshot)

Paths are relative to the current directory. Allure 3 is installed from the npm registry on first use
into the user's cache (~/.cache/netconform; $NETCONFORM_TOOLS_DIR to choose), exactly as pinned by the
package-lock.json shipped in netconform/report/allure/. Exit codes: 0 rendered (and checked), 1 the check
found a problem, 2 bad usage or missing results, 3 a tool could not be installed or failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import html

PROG = "ci/report"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0])
    p.add_argument(
        "--results",
        type=Path,
        default=Path("reports") / "allure-results",
        help="Allure results directory (default: reports/allure-results in the current directory)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=Path("reports") / "report.html",
        help="the HTML file to write (default: reports/report.html)",
    )
    p.add_argument("--name", default="netconform", help="report title")
    p.add_argument(
        "--history",
        type=Path,
        default=None,
        help="Allure 3 history file to append to (e.g. reports/history.jsonl) for trends across runs",
    )
    p.add_argument("--check", action="store_true", help="open the report in headless Chromium and check it")
    p.add_argument("--screenshot", type=Path, help="save a screenshot (PNG) of the report")
    p.add_argument(
        "--show",
        choices=("failed", "overview", "matrix"),
        default="failed",
        help="what the screenshot shows (default: a failed test with its diagnosis, else the overview)",
    )
    p.add_argument("--install-browser", action="store_true", help="install Debian's chromium and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.install_browser:
            print(f"{PROG}: chromium at {html.ensure_chromium()}")
            return 0
        if not args.results.is_dir():
            print(
                f"{PROG}: {args.results} does not exist: run the suite first (netconform run, or pytest suites/)",
                file=sys.stderr,
            )
            return 2
        rendered = html.render(args.results, args.output, args.name, args.history)
        failed = len(rendered.failed())
        print(f"{PROG}: {rendered.html} ({len(rendered.tests)} tests, {failed} failed, {rendered.seconds}s)")
        if not (args.check or args.screenshot):
            return 0
        html.ensure_chromium()
        shots = {}
        if args.screenshot:
            show = args.show if (args.show != "failed" or failed) else "overview"
            shots[show] = args.screenshot
        seen = html.look(rendered, shots)
    except html.ReportError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2 if "no Allure results" in str(exc) else 3
    for path in shots.values():
        print(f"{PROG}: screenshot {path}")
    if seen.problems:
        for problem in seen.problems:
            print(f"{PROG}: check failed: {problem}", file=sys.stderr)
        return 1
    if args.check:
        print(
            f"{PROG}: checked in Chromium: tests listed; "
            + (f"failed test {seen.failed_test} shows its diagnosis; " if seen.failed_test else "no failed test; ")
            + f"matrix picture {seen.matrix_px[0]}x{seen.matrix_px[1]}px"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
