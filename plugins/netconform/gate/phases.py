"""The gate's phases: baseline (run the suite, open the gate), check (run it again, compare), close."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from netconform.dialing.pairs import choose_pairs
from netconform.installed import suites_dir

from . import prog
from .compare import BAD, judge, summary
from .exits import EXIT_BAD_STATE, EXIT_PASS, EXIT_USAGE, GateError
from .holds import BREAK_AFTER_S, HOLDER_DS, NAMESPACE, SERVER_DS, Hold, plan_configmap, planned_holds
from .namespace import PERMISSIONS, GateNamespace, open_gate, read_states
from .pods import GatePod, end_churn
from .state import STATE_FILE, load_state, refuse_other_cluster, save_state

__all__ = ["DEFAULT_STATE", "Selection", "baseline", "check", "close", "run_suite", "suite_command"]

# the operator's working directory, as for the suite's reports: never beside the installed package
DEFAULT_STATE = Path("reports") / "gate"


def suite_command(out_dir: Path, kubeconfig: str | None, context: str | None, extra: list[str]) -> list[str]:
    """The suite as the gate runs it: every installed check (no selection of its own: a check counts
    like any other, the operator's `extra` options aside), everything written under `out_dir`."""
    suites = suites_dir()
    outcomes = out_dir / "outcomes.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(suites),
        f"--rootdir={suites.parent}",
        "-p",
        "no:cacheprovider",
        f"--outcomes-json={outcomes}",
        f"--alluredir={out_dir / 'allure-results'}",
        "--clean-alluredir",
        f"--junitxml={out_dir / 'junit.xml'}",
        f"--matrix={out_dir / 'matrix.svg'}",
    ]
    if kubeconfig:
        cmd.append(f"--kubeconfig={kubeconfig}")
    if context:
        cmd.append(f"--context={context}")
    return cmd + extra


def run_suite(out_dir: Path, kubeconfig: str | None, context: str | None, extra: list[str]) -> dict[str, Any]:
    """The suite in a subprocess (its output streams to ours); returns the outcomes JSON.

    The suites are the installed ones (a clone's suites/, a wheel's netconform/suites); the rootdir is
    their parent, so test ids read `suites/test_x.py::...` from a clone and a wheel alike, and a
    baseline compares with a check run from anywhere. Everything written goes to `out_dir`."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = out_dir / "outcomes.json"
    outcomes.unlink(missing_ok=True)
    cmd = suite_command(out_dir, kubeconfig, context, extra)
    print(f"{prog.name}: running the suite: {' '.join(cmd[3:])}", flush=True)
    done = subprocess.run(cmd)
    if not outcomes.is_file():
        raise GateError(f"the suite did not run (pytest exit {done.returncode}); see its output above")
    data = json.loads(outcomes.read_text())
    if not data.get("tests"):
        raise GateError(f"the suite ran no test (pytest exit {done.returncode})")
    return data


# ---------------------------------------------------------------- the node selection


@dataclass(frozen=True)
class Selection:
    """Which nodes the gate watches and which pairs it holds: the suite's options, given to the suite
    as they are (both phases run the same nodes and, sampled, the same pairs: the seed is fixed at the
    baseline)."""

    node_selector: str | None = None
    node_limit: int | None = None
    pairs: str = "auto"
    pairs_per_node: int = 4  # the suite's default (--pairs-per-node)
    pairs_seed: int | None = None

    def suite_args(self) -> list[str]:
        args = [f"--pairs={self.pairs}", f"--pairs-per-node={self.pairs_per_node}"]
        if self.node_selector:
            args.append(f"--node-selector={self.node_selector}")
        if self.node_limit:
            args.append(f"--node-limit={self.node_limit}")
        if self.pairs_seed is not None:
            args.append(f"--pairs-seed={self.pairs_seed}")
        return args

    def words(self) -> str:
        what = [f"--node-selector {self.node_selector!r}" if self.node_selector else "all Ready schedulable nodes"]
        if self.node_limit:
            what.append(f"--node-limit {self.node_limit}")
        return ", ".join(what)


# ---------------------------------------------------------------- state


def _holds_from_state(state: dict[str, Any]) -> list[Hold]:
    return [Hold(**h) for h in state["holds"]]


def _pods_to_state(pods: dict[tuple[str, str], GatePod]) -> dict[str, dict[str, Any]]:
    return {f"{role}/{node}": p.to_dict() for (role, node), p in sorted(pods.items())}


def _pods_from_state(data: dict[str, dict[str, Any]]) -> dict[tuple[str, str], GatePod]:
    out = {}
    for key, p in data.items():
        role, _, node = key.partition("/")
        out[(role, node)] = GatePod.from_dict(p)
    return out


def baseline(
    state_dir: Path,
    kubeconfig: str | None,
    context: str | None,
    image: str,
    extra: list[str],
    selection: Selection | None = None,
) -> int:
    gate = GateNamespace(kubeconfig, context)
    gate.preflight()
    cluster = gate.cluster()
    if gate.exists():
        raise GateError(
            f"the gate is already open (namespace {NAMESPACE}): {prog.command('check')}, or {prog.command('close')} first",
            EXIT_USAGE,
        )
    selection = selection or Selection()
    chosen, _ = gate.nodes(selection.node_selector, selection.node_limit)
    if len(chosen) < 2:
        raise GateError(
            f"the gate needs two Ready nodes for long-lived connections, {selection.words()} gives {len(chosen)}",
            EXIT_USAGE,
        )
    if selection.pairs_seed is None:
        selection = replace(selection, pairs_seed=secrets.randbelow(10**6))
    nodes = [n.name for n in chosen]
    choice = choose_pairs(
        nodes, selection.pairs, selection.pairs_per_node, selection.pairs_seed or 0, {n.name: n.labels for n in chosen}
    )
    holds = planned_holds(choice.pairs)
    try:  # too big a plan is said before the suite runs, not after it
        plan_configmap(nodes, [Hold(h.src, h.dst, h.via, "[fd00:ffff:ffff:ffff::ffff]:8082") for h in holds])
    except ValueError as exc:
        raise GateError(str(exc), EXIT_USAGE) from None
    print(f"{prog.name}: {len(nodes)} nodes ({selection.words()}); held {choice.describe(len(nodes))}", flush=True)
    data = run_suite(state_dir / "baseline", kubeconfig, context, extra + selection.suite_args())
    gate.reconnect()
    started = time.monotonic()
    try:
        opened = open_gate(gate, nodes, holds, image)
    except GateError:
        gate.delete()
        raise
    established = opened.established
    save_state(
        state_dir,
        {
            "opened": time.time(),
            "context": gate.context,
            "image": image,
            "nodes": nodes,
            "selection": asdict(selection),
            "pairs": choice.describe(len(nodes)),
            "holds": [asdict(h) for h in opened.holds],
            "established": sorted(established),
            "breaks_at_baseline": opened.breaks,
            "pods": _pods_to_state(opened.pods),
            "baseline": data["tests"],
        },
        cluster,
    )
    bad = [n for n, t in data["tests"].items() if t["outcome"] in BAD]
    print(f"{prog.name}: baseline recorded: {len(data['tests'])} tests, {len(bad)} failing (they will not block)")
    print(
        f"{prog.name}: gate open in {time.monotonic() - started:.0f}s: namespace {NAMESPACE}, {len(opened.pods)} pods "
        f"for {len(nodes)} nodes ({len(opened.pods) / len(nodes):g} per node: DaemonSets {SERVER_DS} and "
        f"{HOLDER_DS}; `kubectl drain --ignore-daemonsets` leaves them), "
        f"{len(established)} of {len(opened.holds)} long-lived connections up "
        f"({len(choice.pairs)} pairs x pod IP and ClusterIP)"
    )
    for h in opened.holds:
        if h.key not in established:
            print(f"{prog.name}:   not watched (no connection now): {h.label}")
    print(f"{prog.name}: state in {state_dir}; after the upgrade: {prog.name} check")
    return EXIT_PASS


def _settle_holds(started: float) -> None:
    """Wait until a connection that stopped answering before the check began has been called broken
    by its holder (it waits BREAK_AFTER_S for an echo, as TCP waits out its retransmissions)."""
    left = BREAK_AFTER_S - (time.monotonic() - started)
    if left > 0:
        print(
            f"{prog.name}: waiting {left:.0f}s more for the holders: a line unanswered for {BREAK_AFTER_S}s is a break"
        )
        time.sleep(left)


def check(
    state_dir: Path,
    kubeconfig: str | None,
    context: str | None,
    extra: list[str],
    selection: Selection | None = None,
) -> int:
    state = load_state(state_dir)
    gate = GateNamespace(kubeconfig, context)
    gate.preflight()
    refuse_other_cluster(state_dir, state, gate.cluster())
    if not gate.exists():
        raise GateError(
            f"the gate is not open (no namespace {NAMESPACE}): run {prog.command('baseline')} before the upgrade",
            EXIT_USAGE,
        )
    try:  # what baseline wrote, field by field; a hand-edited file is one sentence
        opened_for = Selection(**state["selection"])
        holds = _holds_from_state(state)
        nodes: list[str] = [str(n) for n in state["nodes"]]
        pods_then = _pods_from_state(state["pods"])
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise GateError(
            f"the gate state {state_dir / STATE_FILE} is damaged: {type(exc).__name__} {exc}", EXIT_BAD_STATE
        ) from None
    if selection is not None and replace(selection, pairs_seed=opened_for.pairs_seed) != opened_for:
        raise GateError(
            f"the gate was opened for {' '.join(opened_for.suite_args())}; check runs the same selection "
            "(leave the node and pair options out)",
            EXIT_USAGE,
        )
    started = time.monotonic()
    data = run_suite(state_dir / "check", kubeconfig, context, extra + opened_for.suite_args())
    _settle_holds(started)
    gate.reconnect()
    # after the suite: the connections lived through it, too
    pods_now = gate.pods()
    existing = gate.node_names()
    churned = {
        (role, n): end_churn(role, n, pods_then.get((role, n)), pods_now.get((role, n)), n in existing)
        for role in ("server", "holder")
        for n in nodes
    }
    states = read_states(gate, holds, pods_now)
    drained = gate.cordoned_since(state["opened"], nodes)
    verdict = judge(
        state["baseline"],
        data["tests"],
        holds,
        states,
        set(state["established"]),
        churned,
        state.get("breaks_at_baseline", {}),
        drained,
    )
    text = summary(verdict, state["baseline"], data["tests"])
    (state_dir / "check" / "summary.txt").write_text(text)
    (state_dir / "check" / "verdict.json").write_text(
        json.dumps(
            {
                "exit_code": verdict.exit_code,
                "new_failures": verdict.comparison.new_failures,
                "fixed": verdict.comparison.fixed,
                "still_failing": verdict.comparison.still_failing,
                "broken": [{"hold": asdict(h), "why": st.why_not(), "cause": cause} for h, st, cause in verdict.broken],
                "churn": [{"hold": asdict(h), "why": why} for h, why in verdict.churn],
                "drained": verdict.drained,
                "survived": [h.key for h in verdict.survived],
                "late": [{"hold": h.key, "first": st.late[0][1], "episodes": len(st.late)} for h, st in verdict.late],
                "not_watched": [h.key for h in verdict.not_established],
                "pods": {"baseline": len(pods_then), "now": len(pods_now), "nodes": len(nodes)},
            },
            indent=1,
        )
    )
    print()
    print(text, end="")
    print(f"{prog.name}: summary in {state_dir / 'check' / 'summary.txt'}; exit {verdict.exit_code}")
    return verdict.exit_code


def close(state_dir: Path, kubeconfig: str | None, context: str | None) -> int:
    gate = GateNamespace(kubeconfig, context)
    gate.preflight(tuple(p for p in PERMISSIONS if p.resource == "namespaces"))
    said = gate.delete()
    state = state_dir / STATE_FILE
    if state.is_file():
        state.rename(state_dir / "gate.closed.json")
    print(f"{prog.name}: {said}")
    return EXIT_PASS
