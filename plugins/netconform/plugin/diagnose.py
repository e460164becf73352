"""pytest plugin: diagnose failed network checks on the nodes, group failures by root cause.

A makereport hookwrapper puts a `Diagnosis` (cause, node, evidence, fix) on every failed test that
carries a `netconform_path`; the terminal summary "root causes" ranks causes by how many failures
they explain. `--diagnose-only` skips the tests and runs every rule on every node.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Generator
from typing import Any

import pytest
from kubernetes import client as k8s

from netconform.diagnose import Diagnoser, Diagnosis, Finding
from netconform.diagnose.correlate import failed_paths, rank, summary_lines
from netconform.diagnose.evidence import NodeEvidence
from netconform.errors import error_text, missing_extra
from netconform.plugin import nodes as plugin_nodes
from netconform.plugin.options import whole_seconds_in
from netconform.plugin.paths import recorded
from netconform.plugin.session import get_cluster, is_active, is_controller, run_id
from netconform.workload.labels import namespace_name
from netconform.workload.manifests import namespace_manifest

__all__ = ["gathered_evidence"]

_DIAG = pytest.StashKey[Diagnoser]()
_HEALTH = pytest.StashKey[list[Finding]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform-diagnose", "netconform diagnosis")
    group.addoption("--no-diagnose", action="store_true", help="do not inspect nodes when a check fails")
    group.addoption(
        "--diagnose-only",
        action="store_true",
        help="skip the checks: run every diagnosis rule on every node (health report; exit 1 on findings)",
    )
    # pytest owns --capture (output capturing), hence --capture-pcap
    group.addoption(
        "--capture-pcap",
        action="store_true",
        help="retry a failing TCP path once under tcpdump on its nodes and analyse the pcap",
    )
    group.addoption(
        "--capture-seconds",
        metavar="DURATION",
        type=whole_seconds_in(1, 300),
        default="8s",
        help="tcpdump duration for --capture-pcap, 1s..5m, e.g. 8s, 1m (a plain number is seconds; default 8s)",
    )
    group.addoption(
        "--diagnose-record",
        metavar="DIR",
        help="save what the diagnosis read (node outputs, cluster facts, failed paths) into DIR, "
        "in the shape the unit tests replay (tests/data/recorded)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # scapy is the capture extra: say so before the run, not after the first failure
    if config.getoption("capture_pcap") and importlib.util.find_spec("scapy") is None:
        raise pytest.UsageError(f"netconform: {missing_extra('--capture-pcap', 'scapy', 'capture')}")


# ---------------------------------------------------------------- the session's diagnoser


def _diagnoser(config: pytest.Config, all_nodes: bool = False) -> Diagnoser:
    if _DIAG not in config.stash:
        cluster = get_cluster(config)
        namespace = namespace_name(run_id(config))
        names = [n.name for n in (cluster.all_nodes if all_nodes else cluster.nodes)]
        ips: dict[str, str | None] = {n.name: n.internal_ip for n in cluster.all_nodes}
        hosts = plugin_nodes.node_hosts(config, cluster.configuration, namespace, names, ips)
        config.stash[_DIAG] = Diagnoser(
            cluster.configuration,
            hosts,
            namespace,
            cluster.all_nodes,
            names,
            capture_seconds=int(config.getoption("capture_seconds")),
            record_dir=config.getoption("diagnose_record", None),
        )
    return config.stash[_DIAG]


def _active(config: pytest.Config) -> bool:
    return is_active(config)


def gathered_evidence(config: pytest.Config) -> dict[str, NodeEvidence]:
    """What this process's diagnosis read on the nodes so far (empty when it inspected none)."""
    diag = config.stash.get(_DIAG, None)
    return diag.gathered() if diag is not None else {}


# ---------------------------------------------------------------- per failed test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    config = item.config
    if report.when != "call" or not report.failed or config.getoption("no_diagnose") or not _active(config):
        return
    paths = recorded(item)
    if not failed_paths(paths):
        return
    started = time.monotonic()
    try:
        diag = _diagnoser(config)
        diagnosis = diag.diagnose_test(item.nodeid, paths)
    except Exception as exc:  # boundary: diagnosis must never turn a failure into an error
        Diagnosis.failed(f"{type(exc).__name__}: {error_text(exc)}", round(time.monotonic() - started, 3)).attach(
            report, item
        )
        return
    if diagnosis is None:
        return
    diagnosis.seconds = round(time.monotonic() - started, 3)
    if config.getoption("capture_pcap"):
        diag.capture(diagnosis, item.nodeid, paths)
    diagnosis.attach(report, item)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not is_controller(config):
        return
    if config.getoption("diagnose_only"):
        _print_health(terminalreporter, config)
        return
    diagnosed = [d for r in terminalreporter.stats.get("failed", []) if (d := Diagnosis.of(r)) is not None]
    made = {
        r.nodeid: d.findings
        for r in terminalreporter.stats.get("failed", [])
        if (d := Diagnosis.of(r)) is not None and d.error is None
    }
    if not made:
        return
    groups, unexplained = rank(made)
    terminalreporter.write_sep("=", "root causes")
    for line in summary_lines(groups, unexplained, len(made)):
        terminalreporter.write_line(line)
    spent = sum(d.seconds for d in diagnosed)
    terminalreporter.write_line(f"diagnosis: {len(made)} failures, {spent:.1f}s gathering evidence and running rules")


# ---------------------------------------------------------------- --diagnose-only


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("diagnose_only") and items:
        config.hook.pytest_deselected(items=list(items))
        items[:] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    config = session.config
    if not config.getoption("diagnose_only"):
        return None
    if config.pluginmanager.hasplugin("dsession"):
        raise pytest.UsageError("--diagnose-only runs in one process: drop -n")
    if not _active(config):
        raise pytest.UsageError("--diagnose-only needs the cluster suite path, e.g. `pytest suites/ --diagnose-only`")
    diag = _diagnoser(config, all_nodes=True)
    if diag.hosts.spec.kind == "agent":
        _ensure_namespace(config, diag)
    config.stash[_HEALTH] = diag.health()
    return True


def _ensure_namespace(config: pytest.Config, diag: Diagnoser) -> None:
    """The agent needs the run namespace; netconform.plugin.probes deletes it at the end as usual."""
    try:
        get_cluster(config).core.create_namespace(namespace_manifest(run_id(config), config.getoption("keep")))
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise pytest.UsageError(
                f"netconform: cannot create namespace {diag.namespace}: {exc.status} {exc.reason}"
            ) from None


def _print_health(tr: Any, config: pytest.Config) -> None:
    findings = config.stash.get(_HEALTH, [])
    tr.write_sep("=", "node health (--diagnose-only)")
    real = [f for f in findings if f.confidence > 0]
    for f in sorted(real, key=lambda f: (-f.confidence, f.node or "", f.cause)):
        tr.write_line(f.render())
        tr.write_line("")
    for f in findings:
        if f.confidence == 0:
            tr.write_line(f"note: {f.title}")
    blind = sorted({f.node or "?" for f in findings if f.cause == "not-inspected"})
    verdict = f": could not inspect {', '.join(blind)}" if blind else "" if real else ": every rule passed"
    tr.write_line(f"{len(real)} finding{'s' if len(real) != 1 else ''}" + verdict)
    if _DIAG in config.stash:
        tr.write_line(f"diagnosis: {config.stash[_DIAG].seconds:.1f}s gathering evidence and running rules")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    where = config.getoption("diagnose_record", None)
    if where and _DIAG in config.stash:
        config.stash[_DIAG].record(where)  # each xdist worker writes the nodes it read
    if config.getoption("diagnose_only") and _HEALTH in config.stash:
        # a node we could not read is not a healthy node
        real = [f for f in config.stash[_HEALTH] if f.confidence > 0 or f.cause == "not-inspected"]
        session.exitstatus = 1 if real else 0
