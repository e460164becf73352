"""ci/report's Allure 3 configuration and its install pin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netconform.diagnose import cause_categories
from netconform.report import html
from netconform.report.browser import BrowserError
from netconform.reporting.categories import allure_categories


def test_config_asks_for_one_file_grouped_by_path_and_case_with_our_categories(tmp_path: Path) -> None:
    cats = allure_categories(cause_categories())
    cfg = html.allure_config("netconform", tmp_path / "out", cats, None)
    awesome = cfg["plugins"]["awesome"]["options"]
    assert awesome["singleFile"] is True and awesome["groupBy"] == ["epic", "feature"]
    assert cfg["categories"]["rules"] == cats and "historyPath" not in cfg
    assert html.allure_config("n", tmp_path, [], tmp_path / "h.jsonl")["historyPath"].endswith("h.jsonl")


def test_allure_is_pinned_by_the_committed_lock_file() -> None:
    lock = json.loads((html.PINS / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/allure"]["version"]
    assert pinned.startswith("3.")
    assert json.loads((html.PINS / "package.json").read_text())["dependencies"]["allure"] == pinned


def test_render_without_results_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(html.ReportError, match="run the suite first"):
        html.render(tmp_path, tmp_path / "r.html")


def test_pick_failed_prefers_a_tcp_cross_node_test() -> None:
    r = html.Rendered(
        Path("x"),
        {
            "a": {"id": "a", "name": "test_clusterip_tcp_reaches_every_backend[from-lab-node-1]", "status": "failed"},
            "b": {"id": "b", "name": "test_tcp_cross_node[lab-node-1-to-lab-node-2]", "status": "failed"},
            "c": {"id": "c", "name": "test_tcp_cross_node[lab-node-1-to-lab-node-3]", "status": "passed"},
        },
    )
    assert html.pick_failed(r)["id"] == "b"
    r.with_pcap = {"test_clusterip_tcp_reaches_every_backend[from-lab-node-1]"}
    assert html.pick_failed(r)["id"] == "a"
    assert html.pick_failed(html.Rendered(Path("x"), {})) is None


def test_a_look_step_that_misses_once_is_tried_again_from_a_fresh_load_and_a_second_miss_is_raised() -> None:
    tries: list[bool] = []

    def misses_on_hash_navigation(fresh: bool) -> str:
        tries.append(fresh)
        if not fresh:
            raise BrowserError("waited 60s for 'root cause:'")
        return "seen"

    assert html._twice(misses_on_hash_navigation) == "seen" and tries == [False, True]

    def always_misses(fresh: bool) -> str:
        raise BrowserError(f"waited 60s for 'root cause:' (fresh={fresh})")

    with pytest.raises(BrowserError, match="fresh=True"):
        html._twice(always_misses)
