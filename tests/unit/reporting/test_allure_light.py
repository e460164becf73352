"""allure-pytest made lighter per test (netconform.plugin.reporting): the same bytes written off the
main thread, and no fixture container for a parametrize argument (its value is a parameter already)
nor for `src`/`host_dials` (NO_CONTAINER)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from allure_commons import model2  # (its TestResult imported by name would look like a test class)
from allure_commons.logger import AllureFileLogger

from netconform.plugin.reporting import _FileLogger, _Writer

REPO = Path(__file__).resolve().parents[3]


def written(directory: Path) -> list[bytes]:
    """Every file's bytes, in a stable order (names carry random uuids)."""
    return sorted(p.read_bytes() for p in directory.iterdir())


@pytest.mark.parametrize("indent", ["", "1"])
def test_file_logger_writes_what_allure_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indent: str) -> None:
    monkeypatch.setenv("ALLURE_INDENT_OUTPUT", indent)
    result = model2.TestResult(
        uuid="u1",
        name="test_tcp_cross_node[ipv4-lab-node-1-to-lab-node-2]",
        status=model2.Status.PASSED,
        labels=[model2.Label(name="story", value="lab-node-1 → lab-node-2")],
        parameters=[
            model2.Parameter(name="family", value="ipv4"),
            model2.Parameter(name="src", value="x", excluded=True),
        ],
        start=1,
        stop=2,
    )
    container = model2.TestResultContainer(uuid="c1", children=["u1"], start=1, stop=2)
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    plain = AllureFileLogger(theirs)
    light = _FileLogger.adopt(AllureFileLogger(ours))
    for logger in (plain, light):
        logger.report_result(result)
        logger.report_container(container)
        logger.report_attached_data('{"ok": true, "é": 1}', "a-attachment.json")
        logger.report_attached_data(b"\x00pcap", "b-attachment.pcap")
    light.writer.close()
    assert written(ours) == written(theirs) and len(written(ours)) == 4
    assert not list(ours.glob("*.tmp"))


def test_a_write_that_fails_is_said_at_the_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    writer = _Writer()
    writer.put(tmp_path / "missing-dir" / "x-result.json", b"{}")
    writer.put(tmp_path / "y-result.json", b"{}")
    writer.close()
    assert (tmp_path / "y-result.json").read_bytes() == b"{}"
    assert "1 Allure files not written, e.g. x-result.json" in capsys.readouterr().err


CONFTEST = """
from pathlib import Path

import pytest

import netconform.plugin.session

pytest_plugins = ["netconform.plugin.reporting"]
netconform.plugin.session.suites_dir = lambda: Path(__file__).resolve().parent / "suites"
"""

SUITE = """
import pytest


@pytest.fixture
def src(request):
    return request.param


@pytest.mark.parametrize(("src", "dst", "family"), [("lab-node-1", "lab-node-2", "ipv4")], indirect=["src"])
def test_tcp_cross_node(src, dst, family):
    pass
"""


def test_no_container_per_parametrize_argument_nor_for_src(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest(CONFTEST)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "test_pod_to_pod.py").write_text(SUITE)
    out = tmp_path / "allure"
    pytester.runpytest_subprocess(
        "suites", "-p", "no:randomly", "-p", "no:netconform", f"--alluredir={out}"
    ).assert_outcomes(passed=1)
    befores = [b["name"] for p in out.glob("*-container.json") for b in json.loads(p.read_text()).get("befores", [])]
    assert befores == []  # src (NO_CONTAINER), dst and family (parametrize arguments)
    assert not list(out.glob("*-container.json"))
    (result,) = [json.loads(p.read_text()) for p in out.glob("*-result.json")]
    assert {p["name"] for p in result["parameters"]} >= {"source node", "destination node", "family"}
