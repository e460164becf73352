"""The gate's phases: baseline (run the suite, open the gate), check (run it again, compare), close."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .compare import BAD, judge, summary
from .exits import EXIT_PASS, EXIT_USAGE, GateError
from .holds import NAMESPACE, Hold
from .namespace import GateNamespace, open_gate, read_states

__all__ = ["REPO", "baseline", "check", "close", "run_suite"]

REPO = Path(__file__).resolve().parents[3]


def run_suite(out_dir: Path, kubeconfig: str | None, context: str | None, extra: list[str]) -> dict[str, Any]:
    """The suite in a subprocess (its output streams to ours); returns the outcomes JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = out_dir / "outcomes.json"
    outcomes.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO / "suites"),
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
    cmd += extra
    print(f"ci/gate: running the suite: {' '.join(cmd[3:])}", flush=True)
    done = subprocess.run(cmd, cwd=REPO)
    if not outcomes.is_file():
        raise GateError(f"the suite did not run (pytest exit {done.returncode}); see its output above")
    data = json.loads(outcomes.read_text())
    if not data.get("tests"):
        raise GateError(f"the suite ran no test (pytest exit {done.returncode})")
    return data


# ---------------------------------------------------------------- state


def _save_state(state_dir: Path, data: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "gate.json").write_text(json.dumps(data, indent=1))


def _load_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "gate.json"
    if not path.is_file():
        raise GateError(f"no gate state in {state_dir}: run `ci/gate baseline` first", EXIT_USAGE)
    return json.loads(path.read_text())


def _holds_from_state(state: dict[str, Any]) -> list[Hold]:
    return [Hold(**h) for h in state["holds"]]


def baseline(state_dir: Path, kubeconfig: str | None, context: str | None, image: str, extra: list[str]) -> int:
    gate = GateNamespace(kubeconfig, context)
    if gate.exists():
        raise GateError(
            f"the gate is already open (namespace {NAMESPACE}): `ci/gate check`, or `ci/gate close` first", EXIT_USAGE
        )
    data = run_suite(state_dir / "baseline", kubeconfig, context, extra)
    nodes = gate.ready_nodes()
    if len(nodes) < 2:
        raise GateError(f"the gate needs two Ready nodes for long-lived connections, found {len(nodes)}", EXIT_USAGE)
    try:
        holds, established = open_gate(gate, nodes, image)
    except GateError:
        gate.delete()
        raise
    _save_state(
        state_dir,
        {
            "opened": time.time(),
            "context": gate.context,
            "image": image,
            "nodes": nodes,
            "holds": [asdict(h) for h in holds],
            "established": sorted(established),
            "baseline": data["tests"],
        },
    )
    bad = [n for n, t in data["tests"].items() if t["outcome"] in BAD]
    print(f"ci/gate: baseline recorded: {len(data['tests'])} tests, {len(bad)} failing (they will not block)")
    print(f"ci/gate: gate open: namespace {NAMESPACE}, {len(established)} of {len(holds)} long-lived connections up")
    for h in holds:
        if h.pod not in established:
            print(f"ci/gate:   not watched (no connection now): {h.label}")
    print(f"ci/gate: state in {state_dir}; after the upgrade: ci/gate check")
    return EXIT_PASS


def check(state_dir: Path, kubeconfig: str | None, context: str | None, extra: list[str]) -> int:
    state = _load_state(state_dir)
    gate = GateNamespace(kubeconfig, context)
    if not gate.exists():
        raise GateError(
            f"the gate is not open (no namespace {NAMESPACE}): run `ci/gate baseline` before the upgrade", EXIT_USAGE
        )
    holds = _holds_from_state(state)
    data = run_suite(state_dir / "check", kubeconfig, context, extra)
    states = read_states(gate, holds)  # after the suite: the connections lived through it, too
    verdict = judge(state["baseline"], data["tests"], holds, states, set(state["established"]))
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
                "survived": [h.pod for h in verdict.survived],
                "not_watched": [h.pod for h in verdict.not_established],
            },
            indent=1,
        )
    )
    print()
    print(text, end="")
    print(f"ci/gate: summary in {state_dir / 'check' / 'summary.txt'}; exit {verdict.exit_code}")
    return verdict.exit_code


def close(state_dir: Path, kubeconfig: str | None, context: str | None) -> int:
    gate = GateNamespace(kubeconfig, context)
    said = gate.delete()
    state = state_dir / "gate.json"
    if state.is_file():
        state.rename(state_dir / "gate.closed.json")
    print(f"ci/gate: {said}")
    return EXIT_PASS
