"""The reporting plugin in real pytest runs (subprocess, -n 2 too) of a stand-in suite: tests named and
parametrized like suites/, carrying `netconform_path` like dialing.path writes it and a Diagnosis like
netconform.plugin.diagnose attaches (emulated in the conftest below). No cluster: what is checked is what reporting adds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from netconform.diagnose import cause_categories
from netconform.reporting.categories import allure_categories

REPO = Path(__file__).resolve().parents[3]

CONFTEST = """
from pathlib import Path

import pytest

import netconform.plugin.session
from netconform.diagnose import Diagnosis

pytest_plugins = ["netconform.plugin.reporting", "netconform.plugin.reporting_per_test"]

# the stand-in suite below plays the cluster suite (wants_cluster looks for the installed suites)
netconform.plugin.session.suites_dir = lambda: Path(__file__).resolve().parent / "suites"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # what netconform.plugin.diagnose does for a failed test with a path: attach its Diagnosis
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        Diagnosis(
            text="most likely: stale-flannel-arp on lab-node-3 - stale entry\\n",
            findings=[{"cause": "stale-flannel-arp", "node": "lab-node-3", "title": "stale entry"}],
        ).attach(report)
"""

SUITE = """
import pytest

NODES = ["lab-node-1", "lab-node-2", "lab-node-3"]
PAIRS = [pytest.param(a, b, id=f"{a}-to-{b}") for a in NODES for b in NODES if a != b]


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_tcp_cross_node(request, src, dst):
    bad = "lab-node-3" in (src, dst)
    request.node.user_properties.append(("netconform_path", {
        "check": "pod_to_pod", "src_node": src, "src_pod": "nc-client-" + src[-1], "src_ip": "10.244.0.5",
        "dst_node": dst, "target": "10.244.9.9:8080", "proto": "tcp", "error": "timeout" if bad else None,
        "seen_ip": None}))
    assert not bad, f"nc-client ({src}) -> 10.244.9.9:8080 ({dst}): timeout after 2s"
"""


@pytest.fixture
def stand_in(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest(CONFTEST)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "test_pod_to_pod.py").write_text(SUITE)
    return pytester


def results(d: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in d.glob("*-result.json")]


def test_xdist_run_cleans_once_labels_steps_cause_and_matrix(stand_in: pytest.Pytester, tmp_path: Path) -> None:
    out, svg, outcomes = tmp_path / "allure", tmp_path / "matrix.svg", tmp_path / "outcomes.json"
    out.mkdir()
    (out / "old-result.json").write_text("{}")
    run = stand_in.runpytest_subprocess(
        "suites",
        "-n",
        "2",
        "-p",
        "no:randomly",
        "-p",
        "no:netconform",
        f"--alluredir={out}",
        "--clean-alluredir",
        f"--matrix={svg}",
        f"--outcomes-json={outcomes}",
    )
    run.assert_outcomes(passed=2, failed=4)
    assert not (out / "old-result.json").exists()  # cleaned by the controller, once, before the workers wrote
    found = results(out)
    assert sorted(r["name"] for r in found) == sorted({r["name"] for r in found}) and len(found) == 6
    assert json.loads((out / "categories.json").read_text()) == allure_categories(cause_categories())

    bad = next(r for r in found if r["name"] == "test_tcp_cross_node[lab-node-1-to-lab-node-3]")
    labels = {(lb["name"], lb["value"]) for lb in bad["labels"]}
    assert {
        ("epic", "Pod to pod"),
        ("feature", "TCP cross node"),
        ("story", "lab-node-1 → lab-node-3"),
        ("severity", "blocker"),
        ("root_cause", "stale-flannel-arp"),
    } <= labels
    params = {p["name"]: p for p in bad["parameters"]}
    assert not params["destination node"].get("excluded") and params["source pod"]["excluded"]
    assert bad["statusDetails"]["message"].endswith("root cause: stale-flannel-arp on lab-node-3 — stale entry")
    assert [a["name"] for a in bad["attachments"]][:2] == ["diagnosis", "diagnosis findings (JSON)"]
    dial = next(s for s in bad["steps"] if s["name"].startswith("dial tcp lab-node-1 -> 10.244.9.9:8080"))
    assert dial["status"] == "failed" and dial["statusDetails"]["message"].startswith("DialFailed")

    picture = svg.read_text()
    assert picture.count("data-outcome='failed'") == 4 and picture.count("data-outcome='passed'") == 2
    assert "data-src='lab-node-3' data-dst='lab-node-1' data-outcome='failed'" in picture
    assert ">stale-flannel-arp</text>" in picture
    verdicts = json.loads(outcomes.read_text())["tests"]
    assert verdicts["suites/test_pod_to_pod.py::test_tcp_cross_node[lab-node-3-to-lab-node-2]"]["causes"] == [
        "stale-flannel-arp@lab-node-3"
    ]


def test_no_allure_writes_nothing_but_outcomes(stand_in: pytest.Pytester, tmp_path: Path) -> None:
    run = stand_in.runpytest_subprocess(
        "suites",
        "-p",
        "no:randomly",
        "-p",
        "no:netconform",
        "--no-allure",
        f"--matrix={tmp_path / 'm.svg'}",
        f"--outcomes-json={tmp_path / 'o.json'}",
    )
    run.assert_outcomes(passed=2, failed=4)
    assert not (tmp_path / "m.svg").exists() and not (stand_in.path / "reports").exists()
    assert len(json.loads((tmp_path / "o.json").read_text())["tests"]) == 6
