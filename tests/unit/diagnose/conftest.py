"""Helpers: load recorded node outputs (tests/data/recorded, see its README) into ClusterEvidence."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netconform.diagnose.evidence import ClusterEvidence, NodeEvidence
from netconform.diagnose.facts_record import facts_from_dict

RECORDED = Path(__file__).resolve().parents[2] / "data" / "recorded"


def facts_data() -> dict[str, Any]:
    return json.loads((RECORDED / "facts.json").read_text())


def load_case(
    case: str, mutate: Callable[[dict[str, Any]], None] | None = None, extra: dict[str, str] | None = None
) -> ClusterEvidence:
    """Evidence of one recorded case; nodes not recorded in the case come from `healthy` when asked (extra)."""
    data = copy.deepcopy(facts_data())
    if mutate:
        mutate(data)
    ev = ClusterEvidence(facts_from_dict(data))
    for f in sorted((RECORDED / case).glob("lab-node-*.txt")):
        ev.nodes[f.stem] = NodeEvidence.from_output(f.stem, f.read_text())
    for node, other in (extra or {}).items():
        ev.nodes[node] = NodeEvidence.from_output(node, (RECORDED / other / f"{node}.txt").read_text())
    return ev


@pytest.fixture
def healthy() -> ClusterEvidence:
    return load_case("healthy")
