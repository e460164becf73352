"""The end-of-run line naming DNS lookups that passed only on the resolver's retry (a lost query)."""

from __future__ import annotations

from typing import Any

from netconform.dialing.path import decode_outcomes, read_paths

RETRIED_SHOWN = 5


def retried_lookups(reports: list[Any]) -> list[str]:
    """Passed DNS paths whose first lookup got no answer (a lost query the retry made up for)."""
    out = []
    for report in reports:
        for path in read_paths(report.user_properties):
            if path.proto == "dns" and not path.error and "D" in decode_outcomes(path.attempts):
                out.append(f"{path.src_pod} ({path.src_node}) -> {path.target}")
    return out


def pytest_terminal_summary(terminalreporter: Any) -> None:
    retried = retried_lookups(terminalreporter.stats.get("passed", []))
    if retried:
        shown = "; ".join(retried[:RETRIED_SHOWN]) + (
            f"; and {len(retried) - RETRIED_SHOWN} more" if len(retried) > RETRIED_SHOWN else ""
        )
        terminalreporter.write_line(
            f"netconform: {len(retried)} DNS lookups got no answer and passed on the resolver's retry (a lost "
            f"query; if it recurs, compare `conntrack -S` insert_failed on the nodes): {shown}"
        )
