"""The Allure categories (categories.json in the results): one per diagnosed cause, then the run's own.

Allure files a failed test under the first category that matches its message; reporting appends the
line `root cause: <cause> ...` (labels.root_cause_line) to it. The causes and their titles come from the
diagnosis rules (netconform.diagnose.rules.categories), passed in by the plugin and ci/report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["FILE", "allure_categories", "write"]

FILE = "categories.json"  # the name allure-pytest's results directory holds them under

# after the causes: what a failure is when no rule named one; [\s\S] rather than (?s): Node's RegExp
# (Allure 3) and Java (Allure 2) both take it
_RUN: tuple[dict[str, Any], ...] = (
    {
        "name": "Network failure, no diagnosed cause",
        "matchedStatuses": ["failed"],
        "messageRegex": "[\\s\\S]*root cause: undiagnosed[\\s\\S]*",
    },
    {
        "name": "Probe could not run (no network verdict)",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": "[\\s\\S]*could not run the probe in [\\s\\S]*",
    },
    {
        "name": "Run setup failed (probes not deployed or not Ready)",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": "[\\s\\S]*netconform: [\\s\\S]*",
    },
    {"name": "Failed without diagnosis (--no-diagnose, or no path recorded)", "matchedStatuses": ["failed"]},
    {"name": "Broken (error outside the check)", "matchedStatuses": ["broken"]},
)


def allure_categories(causes: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """(cause, title) in report order -> Allure's category list: `<title> [<cause>]` per cause, then the rest."""
    return [
        {
            "name": f"{title} [{cause}]",
            "matchedStatuses": ["failed"],
            "messageRegex": f"[\\s\\S]*root cause: {cause}( [\\s\\S]*)?",
        }
        for cause, title in causes
    ] + list(_RUN)


def write(directory: Path, causes: Iterable[tuple[str, str]]) -> None:
    """categories.json into an Allure results directory."""
    (directory / FILE).write_text(json.dumps(allure_categories(causes), indent=2) + "\n")
