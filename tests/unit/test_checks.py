"""The check registry and suites/ agree: every suite module has one entry, every entry a suite module."""

from __future__ import annotations

from pathlib import Path

from netconform.checks import CHECKS, by_name, check_of
from netconform.reporting.labels import PATHS

SUITES = Path(__file__).resolve().parents[2] / "suites"


def test_every_suite_module_has_a_registry_entry_and_back() -> None:
    modules = {check_of(p.stem) for p in SUITES.glob("test_*.py")}
    assert modules  # the directory was found
    assert modules == {c.name for c in CHECKS}


def test_names_are_unique_and_rides_on_names_checks() -> None:
    names = [c.name for c in CHECKS]
    assert len(names) == len(set(names))
    for c in CHECKS:
        assert all(by_name(r) is not None and r != c.name for r in c.rides_on)


def test_labels_read_the_registry() -> None:
    assert list(PATHS) == [c.name for c in CHECKS]
    assert PATHS["pod_to_pod"] == ("Pod to pod", "blocker")
