"""The verdicts of a run: every test's outcome, diagnosed causes and paths (the node x node matrix and
`--outcomes-json`, which the upgrade gate compares). Works on pytest reports as plain objects."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .labels import path_properties
from .matrix import Record, records_from_report

__all__ = ["RunVerdicts", "crash_message", "write_outcomes"]


class RunVerdicts:
    """Every test's paths and outcome, collected on the controller (xdist included)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.outcomes: dict[str, dict[str, Any]] = {}

    def add(self, report: Any, causes: list[str]) -> None:
        """A test's verdict: its call, or a setup that did not pass (broken); xfails are not verdicts."""
        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        if hasattr(report, "wasxfail"):
            return
        outcome = "broken" if report.when == "setup" and report.failed else report.outcome
        paths = path_properties(report.user_properties)
        self.records.extend(records_from_report(report.nodeid, outcome, paths, causes))
        self.outcomes[report.nodeid] = {
            "outcome": outcome,
            "causes": causes,
            "paths": paths,
            "message": crash_message(report) if not report.passed else "",
        }


def crash_message(report: Any) -> str:
    """The first line of what went wrong (assertion message, skip reason), at most 500 characters."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:500] if crash.message else ""
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:  # skip: (file, line, reason)
        return str(report.longrepr[2])[:500]
    return str(report.longrepr or "").strip().splitlines()[-1:][0][:500] if report.longrepr else ""


def write_outcomes(path: Path, run_id: str | None, exitstatus: int, outcomes: dict[str, dict[str, Any]]) -> None:
    """Machine-readable verdicts of the run, written atomically (the upgrade gate compares two of these)."""
    data = {
        "run_id": run_id,
        "exitstatus": int(exitstatus),
        "finished": time.time(),
        "tests": outcomes,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)
