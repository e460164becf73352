"""Comparing two runs of the suite and the holds: what is new, fixed, still failing, broken; the summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .exits import EXIT_BLOCK, EXIT_PASS
from .holds import BREAK_AFTER_S, HOLD_INTERVAL, Hold, HoldState

__all__ = ["BAD", "Comparison", "Verdict", "causes_of", "cause_for_hold", "compare", "judge", "summary"]


@dataclass
class Comparison:
    new_failures: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    not_run_now: list[str] = field(default_factory=list)
    passed: int = 0

    @property
    def blocks(self) -> bool:
        return bool(self.new_failures)


BAD = ("failed", "broken")


def compare(baseline: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> Comparison:
    """Test verdicts by node id. A test that did not exist before and fails now is a new failure."""
    c = Comparison()
    for nodeid, t in sorted(now.items()):
        before = baseline.get(nodeid, {}).get("outcome")
        if t["outcome"] in BAD:
            (c.still_failing if before in BAD else c.new_failures).append(nodeid)
        elif t["outcome"] == "passed":
            c.passed += 1
            if before in BAD:
                c.fixed.append(nodeid)
    c.not_run_now = sorted(set(baseline) - set(now))
    return c


def causes_of(tests: dict[str, dict[str, Any]], nodeids: list[str]) -> Counter[str]:
    """cause@node -> how many of these tests it explains (first-ranked cause per test)."""
    out: Counter[str] = Counter()
    for n in nodeids:
        causes = tests.get(n, {}).get("causes") or []
        out[causes[0] if causes else "undiagnosed"] += 1
    return out


def cause_for_hold(hold: Hold, tests: dict[str, dict[str, Any]]) -> str:
    """The diagnosed cause that names one of the hold's nodes, from the tests failing now."""
    counts: Counter[str] = Counter()
    for t in tests.values():
        if t.get("outcome") not in BAD:
            continue
        for cause in t.get("causes") or []:
            node = cause.partition("@")[2]
            if node in (hold.src, hold.dst):
                counts[cause] += 1
    if counts:
        return counts.most_common(1)[0][0]
    for t in tests.values():  # no node named: a failing pod path between the same nodes
        for p in t.get("paths") or []:
            if t.get("outcome") in BAD and {p.get("src_node"), p.get("dst_node")} == {hold.src, hold.dst}:
                return (t.get("causes") or ["undiagnosed"])[0]
    return ""


@dataclass
class Verdict:
    comparison: Comparison
    survived: list[Hold]
    broken: list[tuple[Hold, HoldState, str]]  # (hold, state, cause)
    not_established: list[Hold]
    churn: list[tuple[Hold, str]] = field(default_factory=list)  # (hold, which end went and how)
    drained: dict[str, str] = field(default_factory=dict)  # node -> when it was cordoned in the window
    churned_ends: dict[tuple[str, str], str] = field(default_factory=dict)  # (role, node) -> why
    late: list[tuple[Hold, HoldState]] = field(default_factory=list)  # survived, with slow echoes

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCK if (self.comparison.blocks or self.broken) else EXIT_PASS


def judge(
    baseline: dict[str, dict[str, Any]],
    now: dict[str, dict[str, Any]],
    holds: list[Hold],
    states: dict[str, HoldState],
    established_at_baseline: set[str],
    churned: dict[tuple[str, str], str] | None = None,
    breaks_at_baseline: dict[str, int] | None = None,
    drained: dict[str, str] | None = None,
) -> Verdict:
    """`states` and the sets/dicts by Hold.key; `churned` by (role, node): why that end did not live on.

    A hold whose holder did not live on is churn whatever its log says (a new holder's log starts
    afresh); one that survived survived; one that broke is churn when its server did not live on, and
    a break otherwise: both ends' pods lived on and the connection broke."""
    comparison = compare(baseline, now)
    churned = churned or {}
    before = breaks_at_baseline or {}
    v = Verdict(comparison, [], [], [], [], dict(drained or {}), {k: why for k, why in churned.items() if why})
    for h in holds:
        st = states.get(h.key, HoldState(problem="no state read")).since(before.get(h.key, 0))
        if h.key not in established_at_baseline:
            v.not_established.append(h)  # a path that did not work before the upgrade cannot be broken by it
        elif churned.get(("holder", h.src)):
            v.churn.append((h, churned[("holder", h.src)]))
        elif st.survived:
            v.survived.append(h)
            if st.late:
                v.late.append((h, st))
        elif churned.get(("server", h.dst)):
            v.churn.append((h, churned[("server", h.dst)]))
        else:
            v.broken.append((h, st, cause_for_hold(h, now)))
    return v


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(v: Verdict, baseline: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> str:
    c = v.comparison
    lines = []
    watched = len(v.survived) + len(v.broken) + len(v.churn)
    churn = f", {len(v.churn)} ended with their pods (expected churn)" if v.churn else ""
    if v.exit_code == EXIT_PASS:
        held = (
            f"all {watched} long-lived connections survived"
            if not v.churn
            else f"{len(v.survived)} of {watched} long-lived connections survived{churn}"
        )
        lines.append(f"GATE PASSED: no new failures ({c.passed} tests pass), {held}")
    else:
        what = []
        if c.new_failures:
            what.append(_plural(len(c.new_failures), "new failure"))
        if v.broken:
            what.append(f"{len(v.broken)} of {watched} long-lived connections broken")
        lines.append("GATE BLOCKED: " + ", ".join(what) + churn)
    if c.new_failures:
        lines.append("")
        lines.append("New failures by root cause:")
        for cause, n in causes_of(now, c.new_failures).most_common():
            lines.append(f"  {_cause_words(cause)} explains {n}")
        for nodeid in c.new_failures[:20]:
            msg = now[nodeid].get("message", "")
            lines.append(f"  - {nodeid}" + (f": {msg}" if msg else ""))
        if len(c.new_failures) > 20:
            lines.append(f"  ... and {len(c.new_failures) - 20} more")
    if v.broken:
        lines.append("")
        lines.append("Broken long-lived connections (both pods lived on):")
        for h, st, cause in v.broken:
            lines.append(f"  - {h.label}: {st.why_not()}" + (f" — likely {_cause_words(cause)}" if cause else ""))
    if v.late:
        lines.append("")
        lines.append(
            f"Slow echoes, not breaks ({len(v.late)} long-lived connections answered later than "
            f"{HOLD_INTERVAL} at least once, none unanswered for {BREAK_AFTER_S}s):"
        )
        for h, st in v.late[:10]:
            at, detail = st.late[0]
            lines.append(f"  ~ {h.label}: at {at}, {detail}")
        if len(v.late) > 10:
            lines.append(f"  ... and {len(v.late) - 10} more")
    if v.drained:
        lines.append("")
        lines.append(f"Nodes cordoned during the window (a drain; not blocking, {len(v.drained)}):")
        for node, when in sorted(v.drained.items()):
            moved = [why for (_, n), why in sorted(v.churned_ends.items()) if n == node]
            lines.append(
                f"  ~ {node}: {when}; "
                + (
                    f"gate pods moved: {'; '.join(moved)}"
                    if moved
                    else "the gate's DaemonSet pods there lived on (0 moved)"
                )
            )
    if v.churn:
        lines.append("")
        lines.append(f"Expected churn (not blocking: an end's pod was replaced, restarted or gone, {len(v.churn)}):")
        lines.extend(f"  ~ {h.label}: {why}" for h, why in v.churn[:40])
        if len(v.churn) > 40:
            lines.append(f"  ... and {len(v.churn) - 40} more")
    if c.fixed:
        lines.append("")
        lines.append(f"Fixed since the baseline ({len(c.fixed)}):")
        lines.extend(f"  + {n}" for n in c.fixed[:20])
    if c.still_failing:
        lines.append("")
        lines.append(f"Failing before and after (not blocking, {len(c.still_failing)}):")
        for cause, n in causes_of(now, c.still_failing).most_common():
            lines.append(f"  {_cause_words(cause)} explains {n}")
    if v.not_established:
        lines.append("")
        lines.append(f"Not watched (no connection at the baseline, {len(v.not_established)}):")
        lines.extend(f"  . {h.label}" for h in v.not_established)
    if c.not_run_now:
        lines.append("")
        lines.append(f"In the baseline but not run now ({len(c.not_run_now)}): first {c.not_run_now[0]}")
    return "\n".join(lines) + "\n"


def _cause_words(cause: str) -> str:
    cid, _, node = cause.partition("@")
    return f"{cid} on {node}" if node else cid
