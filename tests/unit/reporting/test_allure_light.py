"""allure-pytest made lighter per test (netconform.plugin.allure_light): the same bytes written off the
main thread, in place; no fixture container for a parametrize argument (its value is a parameter already)
nor for `src`/`host_dials`; a passed dial step's result as its parameters, not a file. So a passed suite
test writes one file, its result."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from allure_commons import model2  # (its TestResult imported by name would look like a test class)
from allure_commons.logger import AllureFileLogger
from allure_pytest.listener import AllureListener

from netconform.dialing.model import Attempt, DialResult
from netconform.plugin import allure_light
from netconform.plugin.allure_light import NO_CONTAINER, _FileLogger, _Writer
from netconform.plugin.reporting_per_test import _dial_parameters

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


def service_result(**changes: object) -> DialResult:
    """A ClusterIP dial from lab-node-1 that stopped once 2 backends answered (3 of at most 60 attempts)."""

    def attempt(i: int, server: str, node: str, connect: float, total: float) -> Attempt:
        return Attempt(
            ok=True, connect_ms=connect, total_ms=total, server_hostname=server, server_node=node,
            client_ip_seen="10.244.0.5", index=i,
        )  # fmt: skip

    result = DialResult(
        source_pod="nc-client-abcde", source_ip="10.244.0.5", source_node="lab-node-1", target_id="svc:tcp:ipv4",
        check="service", proto="tcp", host="10.96.10.194", port=8080, dest_node=None,
        dest_label="ClusterIP nc-server", timeout_ms=500, stopped="backends", bound=60,
        attempts=[
            attempt(1, "nc-server-b", "lab-node-2", 2.0, 4.0),
            attempt(2, "nc-server-a", "lab-node-1", 1.0, 3.0),
            attempt(3, "nc-server-b", "lab-node-2", 3.0, 9.0),
        ],
    )  # fmt: skip
    for name, value in changes.items():
        setattr(result, name, value)
    return result


def test_dial_parameters_of_a_many_attempt_result() -> None:
    assert _dial_parameters(service_result()) == {
        "dialed": "nc-client-abcde (10.244.0.5, lab-node-1) -> 10.96.10.194:8080 (ClusterIP nc-server)",
        "target id": "svc:tcp:ipv4",
        "attempts": "3/3 ok",
        "stopped": "enough backends answered (3 of at most 60 attempts)",
        "backends answered": "nc-server-a (lab-node-1), nc-server-b (lab-node-2)",
        "client IP the server saw": "10.244.0.5",
        "latency": "connect p50 2.00 ms p99 3.00 ms, total p50 4.00 ms p99 9.00 ms",
    }


def test_dial_parameters_of_a_lookup_and_of_a_failed_datagram() -> None:
    lookup = service_result(
        target_id="dns:short:ipv4", proto="dns", host="nc-server", port=0, dest_label="short name", bound=1,
        stopped="count", addresses=["10.96.10.194"], attempts=[Attempt(ok=True, total_ms=33.28)],
    )  # fmt: skip
    assert _dial_parameters(lookup) == {
        "dialed": "nc-client-abcde (10.244.0.5, lab-node-1) -> DNS nc-server (short name)",
        "target id": "dns:short:ipv4",
        "attempts": "1/1 ok",
        "addresses": "10.96.10.194",
        "latency": "total 33.28 ms",
    }
    lost = service_result(
        proto="udp", bound=1, stopped="count", attempts=[Attempt(ok=False, error="timeout", payload_bytes=1422)]
    )
    assert _dial_parameters(lost) == {
        "dialed": "nc-client-abcde (10.244.0.5, lab-node-1) -> UDP 10.96.10.194:8080 (ClusterIP nc-server)",
        "target id": "svc:tcp:ipv4",
        "attempts": "0/1 ok",
        "payload": "1422 bytes",
    }


CONFTEST = """
from pathlib import Path

import pytest

import netconform.plugin.session

pytest_plugins = ["netconform.plugin.reporting", "netconform.plugin.reporting_per_test"]
netconform.plugin.session.suites_dir = lambda: Path(__file__).resolve().parent / "suites"


def pytest_sessionfinish(session):
    from netconform.plugin import allure_light

    light = type(allure_light.of(session.config)).__name__
    Path("light.txt").write_text(f"registered: {light}; missing: {allure_light.missing()}")
"""

SUITE = """
from types import SimpleNamespace

import pytest

from netconform.dialing.model import Attempt, DialResult
from netconform.plugin.paths import record


@pytest.fixture(scope="session")
def kube():
    return "a session fixture: keeps its container"


@pytest.fixture
def src(request, kube):
    if request.param == "lab-node-9":
        pytest.fail("netconform: no client pod on lab-node-9", pytrace=False)
    ok = request.param == "lab-node-1"
    result = DialResult(
        source_pod="nc-client-x", source_ip="10.244.0.5", source_node=request.param, target_id="pod:tcp:ipv4",
        check="pod_to_pod", proto="tcp", host="10.244.1.7", port=8080, dest_node="lab-node-2",
        attempts=[Attempt(ok=ok, error="" if ok else "timeout", connect_ms=1.5, total_ms=2.5,
                          server_hostname="nc-server-y" if ok else "", server_node="lab-node-2" if ok else "")],
        timeout_ms=500, stopped="count", bound=1)
    return SimpleNamespace(outcome=SimpleNamespace(results=[result]), result=result)


@pytest.mark.parametrize(
    ("src", "dst", "family"),
    [(n, "lab-node-2", "ipv4") for n in ("lab-node-1", "lab-node-3", "lab-node-9")],
    indirect=["src"],
)
def test_tcp_cross_node(request, src, dst, family):
    record(request.node, src.result.path_info())
    assert src.result.ok, src.result.describe()
"""


NODEPORT = """
from types import SimpleNamespace

import pytest

from netconform.dialing.host import HostDials
from netconform.dialing.model import Attempt, DialResult
from netconform.plugin.dial import HostView


@pytest.fixture
def host_dials(request):
    result = DialResult(
        source_pod="runner", source_ip="10.99.0.1", source_node="outside the cluster", target_id="np:ipv4:lab-node-2",
        check="nodeport", proto="tcp", host="10.99.0.12", port=30387, dest_node="lab-node-2",
        dest_label="NodePort of lab-node-2", timeout_ms=500,
        attempts=[Attempt(ok=True, connect_ms=0.5, total_ms=1.5, server_hostname="nc-server-y", server_node="lab-node-2",
                          client_ip_seen="10.244.1.0")])
    return HostView(HostDials("runner", {"lab-node-2": [result]}, {}), request.node)


def test_nodeport_from_this_machine(host_dials):
    assert host_dials.result(SimpleNamespace(name="lab-node-2"), "np:ipv4:lab-node-2").ok
"""


def run_suites(
    pytester: pytest.Pytester,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suites: dict[str, str],
    conftest: str = CONFTEST,
    **outcomes: int,
) -> Path:
    """Run these files as suites/ with allure on (netconform's reporting plugin, no cluster); the results dir."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest(conftest)
    (pytester.path / "suites").mkdir()
    for name, text in suites.items():
        (pytester.path / "suites" / name).write_text(text)
    out = tmp_path / "allure"
    run = pytester.runpytest_subprocess("suites", "-p", "no:randomly", "-p", "no:netconform", f"--alluredir={out}")
    run.assert_outcomes(**outcomes)
    return out


def test_a_passed_test_writes_its_result_only_a_failed_dial_its_json(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suites = {"test_pod_to_pod.py": SUITE, "test_nodeport.py": NODEPORT}
    out = run_suites(pytester, tmp_path, monkeypatch, suites, passed=2, failed=1, errors=1)
    assert (pytester.path / "light.txt").read_text() == "registered: AllureLight; missing: []"
    assert {"src", "host_dials"} == NO_CONTAINER
    containers = [json.loads(p.read_text()) for p in out.glob("*-container.json")]
    assert [b["name"] for c in containers for b in c.get("befores", [])] == ["kube"]  # no src, dst, family
    results = {r["name"]: r for r in (json.loads(p.read_text()) for p in out.glob("*-result.json"))}
    (step,) = [s for s in results.pop("test_nodeport_from_this_machine")["steps"] if s["name"].startswith("dial ")]
    assert {p["name"]: p["value"] for p in step["parameters"]} == {  # found on host_dials (a HostView)
        "dialed": "runner (10.99.0.1, outside the cluster) -> 10.99.0.12:30387 (NodePort of lab-node-2)",
        "target id": "np:ipv4:lab-node-2",
        "attempts": "1/1 ok",
        "backends answered": "nc-server-y (lab-node-2)",
        "client IP the server saw": "10.244.1.0",
        "latency": "connect 0.50 ms, total 1.50 ms",
    }
    passed, failed, unset = (
        results[f"test_tcp_cross_node[{n}-lab-node-2-ipv4]"] for n in ("lab-node-1", "lab-node-3", "lab-node-9")
    )
    assert {p["name"] for p in passed["parameters"]} >= {"source node", "destination node", "family"}

    (step,) = [s for s in passed["steps"] if s["name"].startswith("dial ")]
    assert step["name"] == "dial tcp lab-node-1 -> 10.244.1.7:8080 (lab-node-2)" and step["status"] == "passed"
    assert {p["name"]: p["value"] for p in step["parameters"]} == {
        "dialed": "nc-client-x (10.244.0.5, lab-node-1) -> 10.244.1.7:8080 (lab-node-2)",
        "target id": "pod:tcp:ipv4",
        "attempts": "1/1 ok",
        "backends answered": "nc-server-y (lab-node-2)",
        "latency": "connect 1.50 ms, total 2.50 ms",
    }
    assert not step.get("attachments") and not passed.get("attachments")

    (step,) = [s for s in failed["steps"] if s["name"].startswith("dial ")]
    assert step["status"] == "failed" and step["statusDetails"]["message"].startswith("DialFailed: timeout after 0.5s")
    assert {p["name"]: p["value"] for p in step["parameters"]}["attempts"] == "0/1 ok"
    (attachment,) = step["attachments"]
    assert attachment["name"] == "dial result (JSON)"
    assert json.loads((out / attachment["source"]).read_text())["attempts"][0]["error"] == "timeout"

    # src's set-up failed: no container says so, the test itself does (allure-pytest reads the setup report)
    assert unset["status"] == "failed"
    assert unset["statusDetails"]["message"].startswith("Failed: netconform: no client pod on lab-node-9")

    # one file per passed test: the 4 results, the session fixture's container, the failed dial's JSON
    # (and per run: the matrix picture, attached globally, and allure's globals file naming it)
    names = sorted(p.name.split("-", 5)[-1] for p in out.iterdir() if p.name != "categories.json")
    per_test = ["attachment.json", "container.json", *["result.json"] * 4]
    assert names == sorted([*per_test, "attachment.svg", "globals.json"]), names
    assert not list(out.glob("*.tmp"))


SILENT = """
from netconform.dialing.model import Attempt, DialResult
from netconform.dialing.path import record_path


def test_nodeport_local_silent_without_local_backend(request):
    result = DialResult(
        source_pod="runner", source_ip="10.99.0.1", source_node="outside the cluster", target_id="np-local:lab-node-3",
        check="nodeport", proto="tcp", host="10.99.0.13", port=30388, dest_node="lab-node-3", timeout_ms=500,
        attempts=[Attempt(ok=False, error="timeout")])
    record_path(request.node.user_properties, result.path_info())
    assert not result.ok  # no local backend: silence is the right answer
"""


def test_a_dial_the_check_wants_unanswered_is_a_passed_step_with_its_json(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_suites(pytester, tmp_path, monkeypatch, {"test_nodeport.py": SILENT}, passed=1)
    (result,) = [json.loads(p.read_text()) for p in out.glob("*-result.json")]
    (step,) = [s for s in result["steps"] if s["name"].startswith("dial ")]
    assert step["status"] == "passed" and step["name"].endswith("(no answer, as the check expects)")
    assert {p["name"]: p["value"] for p in step["parameters"]}["attempts"] == "T"  # the recorded path's (no src here)
    assert [a["name"] for a in step["attachments"]] == ["path (JSON)"]


def test_the_internals_it_uses_are_named_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert allure_light.missing() == []  # the allure and pytest this repo pins
    monkeypatch.delattr(AllureListener, "_update_fixtures_children")
    monkeypatch.delattr(AllureFileLogger, "_report_item")
    assert allure_light.missing() == ["AllureListener._update_fixtures_children", "AllureFileLogger._report_item"]


# An allure whose private module allure_commons._allure is gone (a version that moved StepContext): hidden
# before netconform's plugins are imported, after allure's own modules hold what they use of it.
WITHOUT_INTERNALS = (
    """
import sys

sys.modules["allure_commons._allure"] = None  # `from allure_commons._allure import ...` now raises ImportError
"""
    + CONFTEST
)


def test_without_the_internals_allure_writes_the_report_as_it_ships(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_suites(
        pytester, tmp_path, monkeypatch, {"test_pod_to_pod.py": SUITE}, WITHOUT_INTERNALS, passed=1, failed=1, errors=1
    )
    assert (pytester.path / "light.txt").read_text() == (
        "registered: NoneType; missing: ['import of allure_commons._allure halted; None in sys.modules']"
    )
    results = {r["name"]: r for r in (json.loads(p.read_text()) for p in out.glob("*-result.json"))}
    passed, failed, unset = (
        results[f"test_tcp_cross_node[{n}-lab-node-2-ipv4]"] for n in ("lab-node-1", "lab-node-3", "lab-node-9")
    )
    # the same labels and test parameters as with the lighter allure
    assert {p["name"] for p in passed["parameters"]} >= {"source node", "destination node", "family"}
    assert {"epic", "feature", "story", "severity", "check"} <= {label["name"] for label in passed["labels"]}
    # a passed dial step: no parameters (allure.step takes a title only), the result as its JSON instead
    (step,) = [s for s in passed["steps"] if s["name"].startswith("dial ")]
    assert step["name"] == "dial tcp lab-node-1 -> 10.244.1.7:8080 (lab-node-2)" and step["status"] == "passed"
    assert not step.get("parameters") and [a["name"] for a in step["attachments"]] == ["dial result (JSON)"]
    (step,) = [s for s in failed["steps"] if s["name"].startswith("dial ")]
    assert step["status"] == "failed" and step["statusDetails"]["message"].startswith("DialFailed: timeout after 0.5s")
    assert unset["statusDetails"]["message"].startswith("Failed: netconform: no client pod on lab-node-9")
    # allure's own containers: every fixture of every test, the parametrize arguments and src included
    befores = [b["name"] for p in out.glob("*-container.json") for b in json.loads(p.read_text()).get("befores", [])]
    assert {"kube", "src", "dst", "family"} <= set(befores)
