"""The Allure categories (reporting.categories): one per diagnosis cause, matched on the line reporting adds."""

from __future__ import annotations

import re

import pytest

from netconform.diagnose import cause_categories
from netconform.reporting import labels as lb
from netconform.reporting.categories import allure_categories

CATEGORIES = allure_categories(cause_categories())


def rule_causes() -> list[str]:
    """Every cause a diagnose rule reports as a root cause (each rule's RULE declares its category)."""
    return [cause for cause, _ in cause_categories()]


def first_match(message: str, status: str = "failed") -> str | None:
    """Allure 2 semantics (first category whose regex matches the WHOLE message); also valid for JS .test()."""
    for cat in CATEGORIES:
        if status not in cat.get("matchedStatuses", [status]):
            continue
        regex = cat.get("messageRegex")
        if regex is None or re.fullmatch(regex, message):
            return cat["name"]
    return None


def test_rules_exist_to_be_covered() -> None:
    assert "stale-flannel-arp" in rule_causes() and len(rule_causes()) >= 10


@pytest.mark.parametrize("cause", rule_causes())
def test_each_cause_lands_in_its_own_category(cause: str) -> None:
    message = (
        "AssertionError: nc-client-abcde (10.244.1.5, lab-node-1) -> 10.244.2.7:8080 (lab-node-2): timeout after 2s\n"
        + lb.root_cause_line([f"{cause}@lab-node-2"], [{"cause": cause, "node": "lab-node-2", "title": "something"}])
    )
    assert first_match(message) is not None
    assert first_match(message).endswith(f"[{cause}]")


def test_a_cause_is_not_mistaken_for_one_it_prefixes() -> None:
    message = "x\n" + lb.root_cause_line(["stale-flannel-arp-v2@lab-node-2"])
    assert "[stale-flannel-arp]" not in first_match(message)


def test_undiagnosed_probe_not_run_and_plain_failures() -> None:
    assert first_match("x\nroot cause: undiagnosed").startswith("Network failure, no diagnosed cause")
    assert first_match("Failed: could not run the probe in nc-client-x (lab-node-1): exec failed", "broken").startswith(
        "Probe could not run"
    )
    assert first_match("AssertionError: something else").startswith("Failed without diagnosis")


def test_regexes_need_no_inline_flags() -> None:
    # Node's RegExp (Allure 3) rejects (?s); [\s\S] works in Java and JavaScript alike
    assert not any("(?" in c.get("messageRegex", "") for c in CATEGORIES)
