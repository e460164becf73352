"""pytest plugin, per test of the cluster suite: Allure labels, parameters, steps and attachments.

Runs in the process that ran the test (an xdist worker too). Also registers netconform.plugin.allure_light
when the allure internals it needs are there.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import allure
import pytest
from allure_commons.model2 import Label, StatusDetails

from netconform.diagnose import Diagnosis
from netconform.dialing.model import DialResult, percentile
from netconform.dialing.path import PathInfo
from netconform.errors import error_text
from netconform.plugin import allure_light
from netconform.plugin.paths import recorded
from netconform.plugin.reporting import allure_on
from netconform.reporting import labels as lb

__all__: list[str] = []  # hooks only

_LABELS = pytest.StashKey[lb.Labels]()


def pytest_configure(config: pytest.Config) -> None:
    """The lighter allure only where its internals are (as pytest-randomly's xdist hooks only with xdist)."""
    if not allure_light.missing():
        config.pluginmanager.register(allure_light.AllureLight(), allure_light.NAME)


# ---------------------------------------------------------------- labels and parameters


def _is_suite_item(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    return module is not None and lb.check_of(module.__name__) in lb.PATHS and "suites" in Path(str(item.path)).parts


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not allure_on(config):
        return
    for item in items:
        if not _is_suite_item(item):
            continue
        params = item.callspec.params if hasattr(item, "callspec") else {}
        labels = lb.labels_for(item.module.__name__, item.originalname, params)  # type: ignore[attr-defined]
        for mark in (
            allure.epic(labels.epic),
            allure.feature(labels.feature),
            allure.story(labels.story),
            allure.severity(labels.severity),
            allure.label("check", lb.check_of(item.module.__name__)),  # type: ignore[attr-defined]
        ):
            item.add_marker(mark)
        item.stash[_LABELS] = labels


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Readable parameters first, so allure does not add the raw NodeInfo repr of `dst` (volatile)."""
    labels = item.stash.get(_LABELS, None)
    if labels is None:
        return
    for name, value in labels.parameters:
        allure.dynamic.parameter(name, value)
    params = item.callspec.params if hasattr(item, "callspec") else {}
    for raw in labels.excluded:
        allure.dynamic.parameter(raw, lb.node_name(params.get(raw)) or "", excluded=True)


# ---------------------------------------------------------------- steps and attachments


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Outermost wrapper: runs after diagnosis (inner wrapper) has put its findings on the report."""
    outcome = yield
    report = outcome.get_result()
    if item.stash.get(_LABELS, None) is None or not allure_on(item.config):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        try:
            _enrich(item, report)
        except Exception as exc:  # boundary: reporting must never change a verdict
            _attach_text(f"reporting failed: {type(exc).__name__}: {error_text(exc)}", "netconform reporting error")


def _enrich(item: pytest.Item, report: pytest.TestReport) -> None:
    paths = recorded(item)
    for name, value in lb.volatile_parameters([p.to_dict() for p in paths]):
        allure.dynamic.parameter(name, value, excluded=True)
    _setup_steps(item)
    light = allure_light.of(item.config)  # None: this allure's steps take no parameters
    for path in paths:
        _dial_step(path, light, test_passed=report.passed)
    if not report.failed:
        return
    diagnosis = Diagnosis.of(report)
    if diagnosis is None:
        return
    _attach_text(diagnosis.text, "diagnosis")
    _mark_cause(item, lb.root_cause_line(diagnosis.causes, diagnosis.findings), diagnosis.causes)
    if diagnosis.findings:
        allure.attach(
            json.dumps(diagnosis.findings, indent=2), "diagnosis findings (JSON)", allure.attachment_type.JSON
        )
    for node, text in sorted(diagnosis.evidence.items()):
        _attach_text(text, f"node evidence: {node}")
    for name, data in diagnosis.pcap_bytes().items():
        if data:
            allure.attach(data, f"capture on {name} (pcap)", "application/vnd.tcpdump.pcap", "pcap")


def _attach_text(text: str, name: str) -> None:
    allure.attach(text, name, allure.attachment_type.TEXT)


def _setup_steps(item: pytest.Item) -> None:
    """What the run set up before this test could dial (shared by every test of the run)."""
    probes = _fixture_value(item, "probes")
    dials = _fixture_value(item, "dials")
    if probes is not None:
        with allure.step(
            f"setup: probes in namespace {probes.namespace} on {len(probes.servers)} nodes "
            f"(deployed once for the run in {probes.seconds:.1f}s)"
        ):
            pass
    if dials is not None:
        with allure.step(
            f"dialing: one `probe dial` per client pod, {len(dials.outcomes)} pods, {dials.seconds:.1f}s for the run"
        ):
            pass


def _fixture_value(item: pytest.Item, name: str) -> Any:
    """A fixture's value if it was already computed for this test; never runs a fixture (a failed
    session fixture would raise its pytest.fail again from inside makereport)."""
    funcargs = getattr(item, "funcargs", {})
    if name in funcargs:
        return funcargs[name]
    defs = getattr(getattr(item, "_request", None), "_fixture_defs", None) or {}
    cached = getattr(defs.get(name), "cached_result", None)
    if cached and len(cached) >= 3 and cached[2] is None:
        return cached[0]
    return None


def _dial_step(record: PathInfo, light: allure_light.AllureLight | None, test_passed: bool) -> None:
    """One step per dialed path with the result's key facts as the step's parameters (no file). A path
    that failed also carries the probe's whole result as a JSON attachment, and its step is failed,
    unless the test passed: then no answer was what it asked for (eTP=Local on a node without a local
    backend must stay silent) and the step passes, saying so."""
    result, path = record.result, record.to_dict()
    src, target = path.get("src_node"), path.get("target") or "?"
    dst = f" ({path['dst_node']})" if path.get("dst_node") else ""
    unanswered = bool(path.get("error"))
    expected = " (no answer, as the check expects)" if unanswered and test_passed else ""
    title = f"dial {path.get('proto', '')} {src} -> {target}{dst}{expected}".replace("  ", " ")
    params = _dial_parameters(result) if result is not None else _path_parameters(path)
    try:
        with light.step(title, params) if light is not None else allure.step(title):
            if not unanswered and light is not None:
                return
            if result is not None:
                allure.attach(json.dumps(result.to_dict(), indent=2), "dial result (JSON)", allure.attachment_type.JSON)
            else:
                allure.attach(json.dumps(path, indent=2), "path (JSON)", allure.attachment_type.JSON)
            if unanswered and not test_passed:
                raise DialFailed(result.what_went_wrong() if result is not None else str(path.get("error")))
    except DialFailed:
        pass


_STOPPED = {"backends": "enough backends answered", "count": "all attempts made", "max_failures": "too many failures"}


def _dial_parameters(result: DialResult) -> dict[str, str]:
    """A dial result's key facts as Allure step parameters, in reading order; empty facts left out."""
    n, good = len(result.attempts), [a for a in result.attempts if a.ok]
    params = {"dialed": result.path(), "target id": result.target_id, "attempts": f"{len(good)}/{n} ok"}
    if result.bound > 1:
        why = _STOPPED.get(result.stopped, result.stopped or "not said")
        params["stopped"] = f"{why} ({n} of at most {result.bound} attempts)"
    answered = sorted({(a.server_hostname, a.server_node) for a in good if a.server_hostname})
    if answered:
        params["backends answered"] = ", ".join(f"{h} ({node})" if node else h for h, node in answered)
    if result.seen_ips:
        params["client IP the server saw"] = ", ".join(result.seen_ips)
    if result.addresses:
        params["addresses"] = ", ".join(result.addresses)
    if result.payload_bytes:
        params["payload"] = f"{result.payload_bytes} bytes"
    latency = [
        _latency(what, [getattr(a, f"{what}_ms") for a in good if getattr(a, f"{what}_ms") > 0])
        for what in ("connect", "total")
    ]
    if any(latency):
        params["latency"] = ", ".join(text for text in latency if text)
    return params


def _latency(what: str, values: list[float]) -> str:
    """`connect 2.16 ms` (one attempt), `connect p50 2.16 ms p99 3.40 ms` (several); "" for none."""
    if len(values) == 1:
        return f"{what} {values[0]:.2f} ms"
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return f"{what} p50 {p50:.2f} ms p99 {p99:.2f} ms" if p50 is not None and p99 is not None else ""


def _path_parameters(path: dict[str, Any]) -> dict[str, str]:
    """The recorded path's facts when its dial result is not at hand (e.g. the probe could not run)."""
    where = f" ({path['src_ip']}, {path['src_node']})" if path.get("src_ip") else ""
    params = {"dialed": f"{path.get('src_pod') or path.get('src_node') or '?'}{where} -> {path.get('target') or '?'}"}
    for key, name in (("attempts", "attempts"), ("error", "error"), ("seen_ip", "client IP the server saw")):
        if path.get(key):
            value = path[key]
            params[name] = ", ".join(value) if isinstance(value, list) else str(value)
    return params


class DialFailed(AssertionError):
    """Marks a dial step failed in Allure; swallowed right after (the test's verdict is pytest's)."""


# Allure prints the exception's qualified name; builtins-module classes print bare ("DialFailed: timeout after 2s")
DialFailed.__module__ = "builtins"


def _mark_cause(item: pytest.Item, line: str, causes: list[str]) -> None:
    """Put the root cause where Allure's categories look (the message) and as a label to filter by."""
    listener = item.config.pluginmanager.get_plugin("allure_listener")
    test = listener.allure_logger.get_test(None) if listener is not None else None
    if test is None:
        return
    if test.statusDetails is None:
        test.statusDetails = StatusDetails(message=line)
    elif line not in (test.statusDetails.message or ""):
        test.statusDetails.message = f"{test.statusDetails.message or ''}\n{line}".strip()
    if causes:
        test.labels.append(Label(name="root_cause", value=lb.cause_id(causes[0])))
