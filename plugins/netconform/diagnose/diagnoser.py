"""The session's diagnoser: evidence per node gathered once and cached, cluster facts read once,
rules run over them, findings correlated with a failed test's paths.

It takes what it needs as arguments (the cluster's connection and inventory, the node hosts, the run
namespace); the pytest side (`netconform.plugin.diagnose`) builds one per session.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from netconform.dialing.path import PathInfo
from netconform.errors import API_ERRORS, NetconformError, error_text
from netconform.kube.connect import make_api_client
from netconform.kube.inventory import NodeInfo
from netconform.nodes import AccessError, NodeHosts

from . import correlate
from .capture_live import capture_path
from .datapath import NOT_COVERED_CAUSE
from .diagnosis import Diagnosis
from .dialseq import source_patterns
from .evidence import ClusterEvidence, NodeEvidence, gather_script
from .facts import ClusterFacts, NodeFacts, facts_from_api
from .facts_record import facts_to_dict
from .model import NOTHING, Finding
from .rules import run_rules

__all__ = ["GATHER_TIMEOUT_S", "Diagnoser", "render"]

GATHER_TIMEOUT_S = 90.0
_INSPECTION_GAPS = ("not-inspected", "rule-error")


class Diagnoser:
    """Evidence per node, gathered once per session and cached; facts from the API read once.

    configuration: the cluster's client configuration (API facts, the capture's retry dial);
    inventory: every node the cluster has (fallback facts when the API facts cannot be read);
    node_names: the nodes this diagnoser may inspect; capture_seconds/record_dir: --capture-pcap
    duration and where --diagnose-record keeps what was read.
    """

    facts_error: str | None = None  # why the API facts could not be read (then node inventory only)
    seconds = 0.0  # health(): wall time spent gathering evidence and running rules

    def __init__(
        self,
        configuration: k8s.Configuration | None,
        hosts: NodeHosts,
        namespace: str,
        inventory: Iterable[NodeInfo],
        node_names: Iterable[str],
        *,
        capture_seconds: int = 8,
        record_dir: str | None = None,
    ):
        self.configuration, self.hosts, self.namespace = configuration, hosts, namespace
        self.inventory = list(inventory)
        self.node_names = list(node_names)
        self.capture_seconds, self.record_dir = capture_seconds, record_dir
        self._facts: ClusterFacts | None = None
        self._evidence: dict[str, NodeEvidence] = {}
        self._raw: dict[str, str] = {}  # node -> gather output, for --diagnose-record
        self._captured: dict[tuple[str, str | None], str] = {}  # --capture-pcap: cause -> nodeid captured
        self._paths: dict[str, list[dict[str, Any]]] = {}  # nodeid -> its paths, for --diagnose-record
        self._pcap_dir: Path | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ evidence

    def facts(self) -> ClusterFacts:
        with self._lock:
            if self._facts is None:
                try:
                    if self.configuration is None:
                        raise NetconformError("no cluster connection")
                    self._facts = facts_from_api(make_api_client(self.configuration), self.namespace)
                except (NetconformError, *API_ERRORS) as exc:  # RBAC or API trouble: the inventory we have
                    self.facts_error = f"could not read cluster facts: {error_text(exc, 200)}"
                    self._facts = ClusterFacts(nodes={n.name: NodeFacts.from_node(n) for n in self.inventory})
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
            facts = self.facts()
            peers = [
                ip for n in facts.nodes.values() if n.name != node for ip in (n.internal_ip, n.internal_ip_v6) if ip
            ]
            script = gather_script(pod_ips=facts.pod_ips_on(node), dns_queries=facts.dns_queries(), peer_ips=peers)
            res = self.hosts.run(node, script, GATHER_TIMEOUT_S)
        except AccessError as exc:
            return NodeEvidence(node, error=error_text(exc))
        self._raw[node] = res.stdout
        ne = NodeEvidence.from_output(node, res.stdout)
        if not ne.sections:
            ne.error = f"the gather script printed nothing (rc {res.rc}: {(res.stderr or res.stdout).strip()[:200]})"
        return ne

    def gathered(self) -> dict[str, NodeEvidence]:
        """The evidence read so far, by node (what reports may show; nothing is gathered for it)."""
        with self._lock:
            return dict(self._evidence)

    def evidence(self, nodes: list[str]) -> ClusterEvidence:
        facts = self.facts()
        # only cluster nodes: a path from the machine running pytest has src "outside the cluster"
        known = set(self.node_names) | set(facts.nodes)
        wanted = sorted({n for n in nodes if n and n in known})
        with ThreadPoolExecutor(max_workers=4) as pool:
            gathered = list(pool.map(self.node_evidence, wanted))
        return ClusterEvidence(facts, {ne.node: ne for ne in gathered})

    # ------------------------------------------------------------ diagnosing

    def diagnose(self, paths: list[PathInfo]) -> tuple[list[Finding], list[Finding]]:
        """(findings explaining the paths, inspection problems of the nodes involved)."""
        facts = self.facts()
        involved = {n for p in paths for h in correlate.hops_for(p, facts) for n in (h.src, h.dst) if n}
        ev = self.evidence(sorted(involved))
        ev.patterns = source_patterns(paths, facts)
        findings = run_rules(ev)
        # inspection gaps, what the rules do not cover and risks: said beside the causes, never as one
        gaps = [f for f in findings if f.cause in _INSPECTION_GAPS or f.risk or f.cause == NOT_COVERED_CAUSE]
        if self.facts_error:
            gaps.append(_not_inspected(self.facts_error))
        return correlate.explaining([f for f in findings if f not in gaps], paths, facts), gaps

    def diagnose_test(self, nodeid: str, recorded: list[PathInfo]) -> Diagnosis | None:
        """The diagnosis of one failed test from the paths it recorded; None when it has no failed path."""
        paths = correlate.failed_paths(recorded)
        if not paths:
            return None
        with self._lock:
            self._paths[nodeid] = [p.to_dict() for p in recorded]
        findings, gaps = self.diagnose(paths)
        wanted = {p.src_node for p in recorded} | {p.dst_node for p in recorded} | {f.node for f in findings}
        seen = self.gathered()
        return Diagnosis(
            text=render(findings, gaps),
            findings=[f.as_dict() for f in findings],
            gaps=[g.title for g in gaps],
            evidence={n: seen[n].as_text() for n in sorted(n for n in wanted if n and n in seen)},
        )

    def capture(self, diagnosis: Diagnosis, nodeid: str, recorded: list[PathInfo]) -> None:
        """--capture-pcap: once per diagnosed cause (40 failures of one stale entry need one pcap, not 40)."""
        paths = correlate.failed_paths(recorded)
        top = diagnosis.findings[0] if diagnosis.findings else None
        key = (str(top["cause"]), top.get("node")) if top else ("", paths[0].src_node if paths else None)
        with self._lock:
            first = self._captured.setdefault(key, nodeid)
        if first != nodeid:
            diagnosis.text += f"\ncapture: see {first} (same cause)\n"
            return
        if self.configuration is None:
            diagnosis.text += "\ncapture: no cluster connection\n"
            return
        captured = capture_path(
            self.hosts,
            self.facts(),
            self.configuration,
            self.namespace,
            paths,
            self.capture_seconds,
            lambda name, data: self._save_pcap(nodeid, name, data),
        )
        diagnosis.text += "\n" + captured.text
        for name, data in captured.pcaps.items():
            diagnosis.add_pcap(name, data)

    def _save_pcap(self, nodeid: str, node: str, data: bytes) -> str | None:
        """Write the pcap where the operator can open it: --diagnose-record DIR/pcap, else a temp directory."""
        try:
            if self._pcap_dir is None:
                where = self.record_dir
                self._pcap_dir = Path(where) / "pcap" if where else Path(tempfile.mkdtemp(prefix="netconform-pcap-"))
            self._pcap_dir.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.rpartition("::")[2])[:80]
            f = self._pcap_dir / f"{name}-{node}.pcap"
            f.write_bytes(data)
            return str(f)
        except (OSError, ValueError):
            return None

    def health(self) -> list[Finding]:
        """--diagnose-only: every rule on every node; `seconds` says how long it took."""
        started = time.monotonic()
        ev = self.evidence(self.node_names)
        ev.health_only = True
        findings = [_as_health_note(f) for f in run_rules(ev)]
        if self.facts_error:
            findings.append(_not_inspected(self.facts_error))
        self.seconds = time.monotonic() - started
        return findings

    def record(self, directory: str) -> None:
        """--diagnose-record: what was read, replayable by tests/unit/diagnose (facts.json, <node>.txt, paths.json)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "facts.json").write_text(json.dumps(facts_to_dict(self.facts()), indent=1) + "\n")
        for node, text in sorted(self._raw.items()):
            (out / f"{node}.txt").write_text(text)
        if self._paths:
            (out / "paths.json").write_text(json.dumps(self._paths, indent=1) + "\n")


def _as_health_note(f: Finding) -> Finding:
    """A risk in --diagnose-only's report: one line apart from the causes (confidence 0 fails nothing)."""
    if not f.risk:
        return f
    quoted = f"; evidence: {' | '.join(f.evidence)}" if f.evidence else ""
    return dataclasses.replace(f, title=f"risk: {f.title}{quoted}; fix: {f.fix}")


def render(findings: list[Finding], gaps: list[Finding]) -> str:
    """The diagnosis section of a failed test: the most likely cause first, then every finding and note."""
    lines = []
    if findings:
        top = findings[0]
        lines.append(f"most likely: {top.cause}" + (f" on {top.node}" if top.node else "") + f" — {top.title}")
        lines.append("")
        lines.extend(f.render() + "\n" for f in findings)
    else:
        lines.append("no rule explains this failure from the evidence gathered")
    lines.extend(f"risk: {g.title}; fix: {g.fix}" if g.risk else f"note: {g.title}" for g in gaps)
    return "\n".join(lines).rstrip() + "\n"


def _not_inspected(why: str) -> Finding:
    """What could not be read from the API, said beside the causes (it explains no failure)."""
    return Finding(
        cause="not-inspected", title=why, confidence=0.0, node=None, evidence=(), fix="", explains=(NOTHING,)
    )
