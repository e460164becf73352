"""pytest plugin: Allure results on every suite run, the node x node matrix, environment.properties.

Where results go: `--alluredir` if given, else `reports/allure-results` under the repo root. The
controller (the only process without xdist's `workerinput`) cleans the directory once, before any
worker starts, and tells the workers where it is; workers never clean (allure's own
--clean-alluredir would race between workers). Everything per test (labels, steps, attachments)
happens in the process that ran the test; everything per run (matrix, environment) on the controller.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import sys
import threading
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import allure
import allure_commons
import attr
import pytest
from _pytest.python import get_direct_param_fixture_func
from allure_commons.logger import INDENT, AllureFileLogger
from allure_commons.model2 import Label, StatusDetails, TestResultContainer
from allure_pytest.listener import AllureListener

try:  # allure internals reused below; an allure version without them keeps its own listener and steps
    from allure_commons._allure import StepContext
    from allure_pytest.listener import _test_fixtures

    ALLURE_INTERNALS = True
except ImportError:  # pragma: no cover - depends on the installed allure
    ALLURE_INTERNALS = False

from netconform.diagnose import Diagnosis, cause_categories
from netconform.dialing.model import DialResult, percentile
from netconform.dialing.path import PathInfo
from netconform.errors import API_ERRORS, UsageError
from netconform.plugin.diagnose import gathered_evidence
from netconform.plugin.paths import recorded
from netconform.plugin.permissions import GET_KUBE_PROXY_CONFIG, LIST_DAEMONSETS
from netconform.plugin.session import Cluster, get_cluster, is_active, is_controller, run_id, wants_cluster
from netconform.reporting import categories
from netconform.reporting import environment as env
from netconform.reporting import labels as lb
from netconform.reporting import matrix as mx
from netconform.reporting.outcomes import RunVerdicts, write_outcomes

__all__: list[str] = []  # hooks only

_RESULTS = pytest.StashKey[Path]()
_COLLECTOR = pytest.StashKey["_Collector"]()
_LABELS = pytest.StashKey[lb.Labels]()
_SUMMARY = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform-reporting", "netconform reports")
    group.addoption(
        "--matrix",
        metavar="PATH",
        help="where to write the node x node picture of the run (default: reports/matrix.svg in the repo)",
    )
    group.addoption("--no-allure", action="store_true", help="do not write Allure results unless --alluredir is given")
    group.addoption(
        "--outcomes-json",
        metavar="PATH",
        help="write every test's outcome, diagnosed causes and paths as JSON (the upgrade gate compares these)",
    )


def _reports_dir(config: pytest.Config) -> Path:
    return config.rootpath / "reports"


def _allure_on(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("allure_listener") or bool(getattr(config.option, "allure_report_dir", None))


def _clean_results(path: Path) -> None:
    """Empty the results directory (keep the directory: a CI cache or volume may point at it)."""
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before allure-pytest's own pytest_configure reads --alluredir."""
    if not hasattr(config.option, "allure_report_dir"):
        return  # allure-pytest not installed or disabled (-p no:allure_pytest)
    if not is_controller(config):
        shared = config.workerinput.get("netconform_alluredir")  # type: ignore[attr-defined]
        if shared and not config.option.allure_report_dir:
            config.option.allure_report_dir = shared
        config.option.clean_alluredir = False  # the controller cleaned it, once
        return
    if not wants_cluster(config) or config.option.collectonly:
        return
    collector = _Collector()
    config.stash[_COLLECTOR] = collector
    config.pluginmanager.register(collector, "netconform-reporting-collector")
    given = config.option.allure_report_dir
    if not given and config.getoption("no_allure"):
        return
    path = Path(given).resolve() if given else _reports_dir(config) / "allure-results"
    if not given or config.option.clean_alluredir:
        _clean_results(path)
    path.mkdir(parents=True, exist_ok=True)
    config.option.allure_report_dir = str(path)
    config.option.clean_alluredir = False
    config.stash[_RESULTS] = path
    categories.write(path, cause_categories())


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker writes into the directory the controller prepared."""
    path = node.config.stash.get(_RESULTS, None)
    if path is not None:
        node.workerinput["netconform_alluredir"] = str(path)


# ---------------------------------------------------------------- allure-pytest, lighter per test


# Function-scoped fixtures reported without a fixture container of their own: our per-test views of
# session data (netconform.plugin.dial). Their set-up is a lookup, and a container file per test would
# say only "src: passed"; a set-up failure still shows on the test (allure-pytest takes the test's status
# and message from the setup report). The session fixtures they read (`probes`, `dials`, ...) keep theirs.
NO_CONTAINER = frozenset({"src", "host_dials"})


class _Listener(AllureListener):
    """allure-pytest's listener without a fixture container per parametrize argument or NO_CONTAINER fixture.

    allure-pytest reports every fixture set-up of a test as a container file of its own, also the pseudo
    fixtures pytest makes for `@pytest.mark.parametrize`/metafunc.parametrize arguments (`dst`, `family`),
    whose value is already the test's parameter, and `src`/`host_dials` (NO_CONTAINER). Other fixtures
    (the session's `probes`, `dials`, ...) are reported as before."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, Any, None]:
        if fixturedef.func is get_direct_param_fixture_func or fixturedef.argname in NO_CONTAINER:
            yield
            return
        yield from super().pytest_fixture_setup(fixturedef, request)

    def _update_fixtures_children(self, item: pytest.Item) -> None:
        """allure-pytest's own, less NO_CONTAINER (it would start a container for a fixture it did not see set up)."""
        uuid = self._cache.get(item.nodeid)
        for fixturedef in _test_fixtures(item):
            if fixturedef.argname in NO_CONTAINER:
                continue
            group_uuid = self._cache.get(fixturedef)
            if group_uuid:
                group = self.allure_logger.get_item(group_uuid)
            else:
                group_uuid = self._cache.push(fixturedef)
                group = TestResultContainer(uuid=group_uuid)
                self.allure_logger.start_group(group_uuid, group)
            if uuid not in group.children:
                self.allure_logger.update_group(group_uuid, children=uuid)


class _Writer:
    """Writes allure's files on a thread of its own, in the order given: creating a file is a metadata
    operation of the file system that took 0.1-0.9 ms here (more while other work writes to the disk),
    a file per passed test, and a thread in a system call does not hold the interpreter's lock, so the
    tests go on meanwhile. Each file is written in place, as allure's own AllureFileLogger does (no
    temporary name and rename: that was a second metadata operation per file; Allure reads the directory
    after the run, when `close` has returned). `close` (at the end of the run, bounded) waits until
    every file is written."""

    WAIT_S = 120.0

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Path, bytes] | None] = queue.SimpleQueue()
        self.failed: list[str] = []
        self._thread = threading.Thread(target=self._run, name="allure-writer", daemon=True)
        self._thread.start()

    def put(self, path: Path, data: bytes) -> None:
        self._queue.put((path, data))

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            path, data = job
            try:
                path.write_bytes(data)
            except OSError as exc:
                self.failed.append(f"{path.name}: {exc.strerror or exc}")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(self.WAIT_S)
        if self._thread.is_alive():
            print(f"netconform: Allure results still being written after {self.WAIT_S:.0f}s", file=sys.stderr)
        elif self.failed:
            print(f"netconform: {len(self.failed)} Allure files not written, e.g. {self.failed[0]}", file=sys.stderr)


class _FileLogger(AllureFileLogger):
    """allure-commons' writer, the same bytes: serialized here (json.dumps, in C; json.dump to a file
    encodes in pure Python), written by a _Writer."""

    writer: _Writer

    @classmethod
    def adopt(cls, logger: AllureFileLogger) -> _FileLogger:
        """allure's own logger, now this class, with a writer of its own."""
        logger.__class__ = cls
        assert isinstance(logger, cls)
        logger.writer = _Writer()
        return logger

    def _report_item(self, item: Any) -> None:
        indent = INDENT if os.environ.get("ALLURE_INDENT_OUTPUT") else None
        filename = item.file_pattern.format(prefix=uuid.uuid4())
        data = attr.asdict(item, filter=lambda _, v: v or v is False)
        self.writer.put(self._report_dir / filename, json.dumps(data, indent=indent, ensure_ascii=False).encode())

    @allure_commons.hookimpl
    def report_attached_data(self, body: str | bytes, file_name: str) -> None:
        self.writer.put(self._report_dir / file_name, body.encode() if isinstance(body, str) else body)


def _lighten_allure(config: pytest.Config) -> None:
    """Swap in _Listener and _FileLogger (exactly allure-pytest's own classes only: another version or a
    subclass someone registered is left alone); hooks are bound when registered, hence re-registered."""
    listener = config.pluginmanager.get_plugin("allure_listener")
    if type(listener) is AllureListener and ALLURE_INTERNALS:
        config.pluginmanager.unregister(listener)
        listener.__class__ = _Listener
        config.pluginmanager.register(listener, "allure_listener")
    manager = allure_commons.plugin_manager
    for plugin in manager.get_plugins():
        if type(plugin) is AllureFileLogger:
            name = manager.get_name(plugin)
            manager.unregister(plugin)
            light = _FileLogger.adopt(plugin)
            config.add_cleanup(light.writer.close)  # before allure's own cleanup, which unregisters it
            manager.register(light, name)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Runs of the cluster suite only: other tests of a project with netconform installed keep allure as is."""
    if wants_cluster(session.config) and _allure_on(session.config):
        _lighten_allure(session.config)


# ---------------------------------------------------------------- per test: labels and parameters


def _is_suite_item(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    return module is not None and lb.check_of(module.__name__) in lb.PATHS and "suites" in Path(str(item.path)).parts


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _allure_on(config):
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


# ---------------------------------------------------------------- per test: steps and attachments


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Outermost wrapper: runs after diagnosis (inner wrapper) has put its findings on the report."""
    outcome = yield
    report = outcome.get_result()
    if item.stash.get(_LABELS, None) is None or not _allure_on(item.config):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        try:
            _enrich(item, report)
        except Exception as exc:  # boundary: reporting must never change a verdict
            _attach_text(f"reporting failed: {type(exc).__name__}: {exc}", "netconform reporting error")


def _enrich(item: pytest.Item, report: pytest.TestReport) -> None:
    paths = recorded(item)
    for name, value in lb.volatile_parameters([p.to_dict() for p in paths]):
        allure.dynamic.parameter(name, value, excluded=True)
    _setup_steps(item)
    for path in paths:
        _dial_step(path, test_passed=report.passed)
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


def _dial_step(record: PathInfo, test_passed: bool) -> None:
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
        with StepContext(title, params) if ALLURE_INTERNALS else allure.step(title):
            if not unanswered and ALLURE_INTERNALS:
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


# ---------------------------------------------------------------- per run, on the controller


class _Collector:
    """Controller only: every test's verdict, for the matrix and --outcomes-json (xdist included)."""

    def __init__(self) -> None:
        self.run = RunVerdicts()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        diagnosis = Diagnosis.of(report)
        self.run.add(report, diagnosis.causes if diagnosis is not None else [])


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Before probes' sessionfinish deletes the namespace (environment reads the cluster, not the run)."""
    config = session.config
    collector = config.stash.get(_COLLECTOR, None)
    if collector is None or not is_controller(config):
        return
    lines: list[str] = []
    outcomes = config.getoption("outcomes_json")
    if outcomes:
        run = run_id(config) if is_active(config) else None
        write_outcomes(Path(outcomes), run, exitstatus, collector.run.outcomes)
        lines.append(f"outcomes in {outcomes}")
    results = config.stash.get(_RESULTS, None)
    if results is not None:
        if is_active(config) and _connected(config):
            try:
                lines.append(_write_environment(config, results))
            except Exception as exc:  # boundary: an unreadable cluster must not hide the results
                lines.append(f"environment.properties not written: {type(exc).__name__}: {exc}")
        if collector.run.records:
            lines.append(_write_matrix(config, collector.run.records))
        lines.append(f"Allure results in {results}; HTML report: ci/report")
    config.stash[_SUMMARY] = lines


def _connected(config: pytest.Config) -> bool:
    try:
        get_cluster(config)
    except UsageError:
        return False
    return True


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash.get(_SUMMARY, []):
        terminalreporter.write_line(f"netconform: {line}")


def _matrix_path(config: pytest.Config) -> Path:
    given = config.getoption("matrix")
    return Path(given).resolve() if given else _reports_dir(config) / "matrix.svg"


def _write_matrix(config: pytest.Config, records: list[mx.Record]) -> str:
    try:
        nodes = [n.name for n in get_cluster(config).nodes]
    except UsageError:
        nodes = sorted({r.src for r in records})
    m = mx.build(nodes, records)
    run = run_id(config) if _connected(config) else "(no cluster)"
    svg = mx.render_svg(m, f"netconform run {run}: node x node")
    path = _matrix_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg)
    allure.global_attach(svg, "node x node matrix", allure.attachment_type.SVG)
    verdict = "all green" if m.all_passed else "some cells red"
    return f"matrix picture ({verdict}) in {path}"


def _write_environment(config: pytest.Config, results: Path) -> str:
    c = get_cluster(config)
    daemonsets = _kube_system_daemonsets(c)
    props = env.properties(
        context=c.context,
        server=c.server,
        version=c.version,
        nodes=c.all_nodes,
        selected=[n.name for n in c.nodes],
        cni=env.detect_cni([n.annotations for n in c.all_nodes], [name for name, _ in daemonsets]),
        proxy_mode=env.proxy_mode(
            _kube_proxy_configs(c), daemonsets, _node_rules(config), unreadable=bool(c.cannot_inspect)
        ),
        run_id=run_id(config),
    )
    (results / "environment.properties").write_text(env.render_properties(props))
    return f"environment: Kubernetes {props['Kubernetes.version']}, CNI {props['CNI']}, kube-proxy {props['kube-proxy.mode']}"


def _kube_system_daemonsets(c: Cluster) -> list[tuple[str, list[str]]]:
    """(name, command and args of every container) of each kube-system DaemonSet; none when unreadable."""
    if not c.permitted(LIST_DAEMONSETS):
        return []  # the header said so once
    try:
        items = c.apps.list_namespaced_daemon_set("kube-system", _request_timeout=10).items
    except API_ERRORS:
        return []
    out = []
    for ds in items:
        spec = ds.spec.template.spec if ds.spec and ds.spec.template else None
        argv = [a for k in (spec.containers if spec else []) for a in [*(k.command or []), *(k.args or [])]]
        out.append(((ds.metadata.name or "") if ds.metadata else "", argv))
    return out


def _kube_proxy_configs(c: Cluster) -> list[str]:
    if not c.permitted(GET_KUBE_PROXY_CONFIG):
        return []
    try:
        cm = c.core.read_namespaced_config_map("kube-proxy", "kube-system", _request_timeout=10)
    except API_ERRORS:
        return []  # not readable or not there: the DaemonSet or the nodes' rules may tell
    return list((cm.data or {}).values())


def _node_rules(config: pytest.Config) -> list[tuple[str, str, str]]:
    """(node, iptables-save, ip link) a diagnosis in this process read (serial runs; xdist workers keep theirs)."""
    return [(node, ne.text("iptables"), ne.text("link")) for node, ne in sorted(gathered_evidence(config).items())]
