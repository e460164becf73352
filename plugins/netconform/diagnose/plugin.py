"""pytest plugin: diagnose failed network checks on the nodes, group failures by root cause.

Hooks: a makereport hookwrapper adds a "netconform diagnosis" section (cause, node,
evidence, fix) to every failed test carrying a `netconform_path`, and exposes the
findings as `report.netconform_findings` (list of dicts; survives xdist). The
terminal summary "root causes" ranks causes by how many failures they explain.
`--diagnose-only` skips the tests and runs every rule on every node.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from netconform import nodes as nodes_mod

from . import correlate
from .evidence import ClusterEvidence, ClusterFacts, NodeEvidence, NodeFacts, facts_from_api, gather_script
from .model import NOTHING, Finding, PathRef
from .rules import run_rules

_DIAG = pytest.StashKey["Diagnoser"]()
_HEALTH = pytest.StashKey[list[Finding]]()
SECTION = "netconform diagnosis"
GATHER_TIMEOUT_S = 90.0


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
    group.addoption("--capture-seconds", metavar="N", type=int, default=8, help="tcpdump duration for --capture-pcap")
    group.addoption(
        "--diagnose-record",
        metavar="DIR",
        help="save what the diagnosis read (node outputs, cluster facts, failed paths) into DIR, "
        "in the shape the unit tests replay (tests/data/recorded)",
    )


# ---------------------------------------------------------------- the session's diagnoser


class Diagnoser:
    """Evidence per node, gathered once per session and cached; facts from the API read once."""

    facts_error: str | None = None  # why the API facts could not be read (then node inventory only)
    seconds = 0.0  # --diagnose-only: wall time spent gathering evidence and running rules

    def __init__(self, config: pytest.Config, all_nodes: bool = False):
        from netconform import cluster as cl
        from netconform import probes

        self.config = config
        self.cluster = cl.get_cluster(config)
        self.namespace = probes.namespace_name(cl.run_id(config))
        self.node_names = [n.name for n in (self.cluster.all_nodes if all_nodes else self.cluster.nodes)]
        spec = nodes_mod.parse_node_access(config.getoption("node_access"))
        fleet = None
        if spec.kind == "agent":
            fleet = nodes_mod.AgentFleet(
                self.api_factory,
                self.namespace,
                nodes_mod.agent_image(config),
                self.node_names,
                config.getoption("agent_timeout"),
            )
        self.hosts = nodes_mod.NodeHosts(spec, fleet, {n.name: n.internal_ip for n in self.cluster.all_nodes})
        self._facts: ClusterFacts | None = None
        self._evidence: dict[str, NodeEvidence] = {}
        self.raw: dict[str, str] = {}  # node -> gather output, for --diagnose-record
        self.captured: dict[tuple[str, str | None], str] = {}  # --capture-pcap: cause -> nodeid captured
        self.paths: dict[str, list[dict[str, Any]]] = {}  # nodeid -> failed paths, for --diagnose-record
        self._lock = threading.Lock()

    def api_factory(self) -> Any:
        from kubernetes import client

        return client.ApiClient(self.cluster.configuration)

    def facts(self) -> ClusterFacts:
        with self._lock:
            if self._facts is None:
                try:
                    self._facts = facts_from_api(self.api_factory(), self.namespace)
                except Exception as exc:  # RBAC or API trouble: fall back to the inventory we have
                    self.facts_error = f"could not read cluster facts: {str(exc).strip().splitlines()[0][:200]}"
                    self._facts = ClusterFacts(
                        nodes={
                            n.name: NodeFacts.from_annotations(
                                n.name, n.internal_ip, tuple(n.pod_cidrs), n.annotations, n.ready
                            )
                            for n in self.cluster.all_nodes
                        }
                    )
            return self._facts

    def node_evidence(self, node: str) -> NodeEvidence:
        with self._lock:
            cached = self._evidence.get(node)
        if cached is not None:
            return cached
        ne = self._gather(node)
        with self._lock:
            self._evidence.setdefault(node, ne)
            return self._evidence[node]

    def _gather(self, node: str) -> NodeEvidence:
        """One exec per node: the whole gather script, bounded."""
        try:
            res = self.hosts.run(node, gather_script(), GATHER_TIMEOUT_S)
        except nodes_mod.AccessError as exc:
            return NodeEvidence(node, error=str(exc))
        self.raw[node] = res.stdout
        ne = NodeEvidence.from_output(node, res.stdout)
        if not ne.sections:
            ne.error = f"the gather script printed nothing (rc {res.rc}: {(res.stderr or res.stdout).strip()[:200]})"
        return ne

    def evidence(self, nodes: list[str]) -> ClusterEvidence:
        facts = self.facts()
        # only cluster nodes: a path from the machine running pytest has src "outside the cluster"
        known = set(self.node_names) | set(facts.nodes)
        wanted = sorted({n for n in nodes if n and n in known})
        with ThreadPoolExecutor(max_workers=4) as pool:
            gathered = list(pool.map(self.node_evidence, wanted))
        return ClusterEvidence(facts, {ne.node: ne for ne in gathered})

    def diagnose(self, paths: list[PathRef]) -> tuple[list[Finding], list[Finding]]:
        """(findings explaining the paths, inspection problems of the nodes involved)."""
        facts = self.facts()
        involved = {n for p in paths for h in correlate.hops_for(p, facts) for n in (h.src, h.dst) if n}
        ev = self.evidence(sorted(involved))
        findings = run_rules(ev)
        gaps = [f for f in findings if f.cause in ("not-inspected", "rule-error")]
        if self.facts_error:
            gaps.append(Finding("not-inspected", self.facts_error, 0.0, None, (), "", (NOTHING,)))
        return correlate.explaining([f for f in findings if f not in gaps], paths, facts), gaps

    def record(self, directory: str) -> None:
        """--diagnose-record: what was read, replayable by tests/unit/diagnose (facts.json, <node>.txt, paths.json)."""
        from .evidence import facts_to_dict

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "facts.json").write_text(json.dumps(facts_to_dict(self.facts()), indent=1) + "\n")
        for node, text in sorted(self.raw.items()):
            (out / f"{node}.txt").write_text(text)
        if self.paths:
            (out / "paths.json").write_text(json.dumps(self.paths, indent=1) + "\n")


def diagnoser(config: pytest.Config, all_nodes: bool = False) -> Diagnoser:
    if _DIAG not in config.stash:
        config.stash[_DIAG] = Diagnoser(config, all_nodes)
    return config.stash[_DIAG]


def _active(config: pytest.Config) -> bool:
    try:
        from netconform import cluster as cl
    except ImportError:
        return False
    return cl.is_active(config)


# ---------------------------------------------------------------- per failed test


def render(findings: list[Finding], gaps: list[Finding], paths: list[PathRef]) -> str:
    lines = []
    if findings:
        top = findings[0]
        lines.append(f"most likely: {top.cause}" + (f" on {top.node}" if top.node else "") + f" — {top.title}")
        lines.append("")
        lines.extend(f.render() + "\n" for f in findings)
    else:
        lines.append("no rule explains this failure from the evidence gathered")
    lines.extend(f"note: {g.title}" for g in gaps)
    return "\n".join(lines).rstrip() + "\n"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    config = item.config
    if report.when != "call" or not report.failed or config.getoption("no_diagnose") or not _active(config):
        return
    paths = correlate.failed_paths(item.user_properties, item.nodeid)
    if not paths:
        return
    started = time.monotonic()
    try:
        diag = diagnoser(config)
        getattr(diag, "paths", {})[item.nodeid] = [
            dict(json.loads(v) if isinstance(v, str) else v) for k, v in item.user_properties if k == "netconform_path"
        ]
        findings, gaps = diag.diagnose(paths)
    except Exception as exc:  # diagnosis must never turn a failure into an error
        report.sections.append((SECTION, f"diagnosis failed: {type(exc).__name__}: {exc}\n"))
        return
    finally:
        report.netconform_diag_seconds = round(time.monotonic() - started, 3)
    text = render(findings, gaps, paths)
    if config.getoption("capture_pcap"):
        from . import capture

        # one capture per diagnosed cause: 40 failures of one stale entry need one pcap, not 40
        key = (findings[0].cause, findings[0].node) if findings else ("", paths[0].src_node)
        first = getattr(diag, "captured", {}).get(key)
        if first is None:
            if hasattr(diag, "captured"):
                diag.captured[key] = item.nodeid
            text += "\n" + capture.capture_for_report(diag, paths, report)
        else:
            text += f"\ncapture: see {first} (same cause)\n"
    report.sections.append((SECTION, text))
    report.netconform_findings = [f.as_dict() for f in findings]  # for reporting (allure) and the summary
    report.netconform_gaps = [g.title for g in gaps]
    if findings:
        report.user_properties.append(
            ("netconform_cause", json.dumps([f"{f.cause}@{f.node}" if f.node else f.cause for f in findings[:3]]))
        )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    if config.getoption("diagnose_only"):
        _print_health(terminalreporter, config)
        return
    failed = [r for r in terminalreporter.stats.get("failed", []) if hasattr(r, "netconform_findings")]
    if not failed:
        return
    groups, unexplained = correlate.rank({r.nodeid: r.netconform_findings for r in failed})
    terminalreporter.write_sep("=", "root causes")
    for line in correlate.summary_lines(groups, unexplained, len(failed)):
        terminalreporter.write_line(line)
    spent = sum(getattr(r, "netconform_diag_seconds", 0.0) for r in terminalreporter.stats.get("failed", []))
    terminalreporter.write_line(f"diagnosis: {len(failed)} failures, {spent:.1f}s gathering evidence and running rules")


# ---------------------------------------------------------------- --diagnose-only


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("diagnose_only") and items:
        config.hook.pytest_deselected(items=list(items))
        items[:] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    config = session.config
    if not config.getoption("diagnose_only"):
        return None
    if config.pluginmanager.hasplugin("dsession"):
        raise pytest.UsageError("--diagnose-only runs in one process: drop -n")
    if not _active(config):
        raise pytest.UsageError("--diagnose-only needs the cluster suite path, e.g. `pytest suites/ --diagnose-only`")
    diag = diagnoser(config, all_nodes=True)
    if diag.hosts.spec.kind == "agent":
        _ensure_namespace(config, diag)
    started = time.monotonic()
    ev = diag.evidence(diag.node_names)
    config.stash[_HEALTH] = run_rules(ev)
    if diag.facts_error:
        config.stash[_HEALTH].append(Finding("not-inspected", diag.facts_error, 0.0, None, (), "", (NOTHING,)))
    diag.seconds = time.monotonic() - started
    return True


def _ensure_namespace(config: pytest.Config, diag: Diagnoser) -> None:
    """The agent needs the run namespace; the probes plugin deletes it at the end as usual."""
    from kubernetes.client.rest import ApiException

    from netconform import cluster as cl
    from netconform import probes

    try:
        diag.cluster.core.create_namespace(probes.namespace_manifest(cl.run_id(config), config.getoption("keep")))
    except ApiException as exc:
        if exc.status != 409:
            raise pytest.UsageError(f"netconform: cannot create namespace {diag.namespace}: {exc.status} {exc.reason}")


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
