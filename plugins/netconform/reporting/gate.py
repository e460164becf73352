"""The upgrade gate (ci/gate): did the upgrade break anything that worked before it?

  baseline  run the suite, record its verdicts, open the gate: namespace `netconform-gate` with a
            hold server pod on every node and, for every ordered pair of nodes, a pod on the source
            node holding one long-lived TCP connection (`probe hold`) to the destination node's server
            pod, directly (pod) and through a per-node ClusterIP Service (service).
  check     run the suite again, read every hold pod's log (JSON lines: connected / broken), compare
            with the baseline. New failures or broken connections block (exit 1); fixed ones are said.
  close     delete the gate namespace.

The gate namespace is labelled app.kubernetes.io/managed-by=netconform-gate, not `netconform`: the
suite's sweep of leftover run namespaces selects managed-by=netconform and never sees it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "netconform-gate"
MANAGED_BY = "netconform-gate"
GATE_LABEL = "netconform.io/gate"
ROLE_LABEL = "netconform.io/gate-role"
NODE_LABEL = "netconform.io/gate-node"
HOLD_PORT = 8082
HOLD_INTERVAL = "1s"
EXIT_PASS, EXIT_BLOCK, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3
READY_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 60.0


class GateError(Exception):
    """One sentence; `code` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_CANNOT_RUN) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- holds: manifests and logs


@dataclass(frozen=True)
class Hold:
    src: str
    dst: str
    via: str  # pod | service
    pod: str
    target: str = ""  # host:port, known once the server pod / Service has an address

    @property
    def label(self) -> str:
        return f"{self.src} -> {self.dst} ({'pod IP' if self.via == 'pod' else 'ClusterIP'} {self.target})"


def short(node: str) -> str:
    return node.lower().replace(".", "-")[:40]


def server_pod_name(node: str) -> str:
    return f"gate-server-{short(node)}"


def service_name(node: str) -> str:
    return f"gate-{short(node)}"[:63]


def hold_pod_name(src: str, dst: str, via: str) -> str:
    return f"hold-{via}-{short(src)}--{short(dst)}"


def planned_holds(nodes: list[str]) -> list[Hold]:
    return [
        Hold(s, d, via, hold_pod_name(s, d, via)) for s in nodes for d in nodes if s != d for via in ("pod", "service")
    ]


def namespace_manifest(opened_by: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, GATE_LABEL: "open"},
            "annotations": {"netconform.io/opened": str(int(time.time())), "netconform.io/opened-by": opened_by},
        },
    }


def _pod(name: str, node: str, role: str, image: str, args: list[str], extra_labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {ROLE_LABEL: role, NODE_LABEL: node, **extra_labels}},
        "spec": {
            "nodeName": node,  # pinned: the gate watches this node's paths through the upgrade
            "restartPolicy": "Never",  # a restarted hold would hide a break
            "tolerations": [{"operator": "Exists"}],
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": role,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": args,
                    "env": [{"name": "NODE_NAME", "value": node}],
                    "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}},
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def server_manifest(node: str, image: str) -> dict[str, Any]:
    return _pod(server_pod_name(node), node, "server", image, ["serve", "--hold-port", str(HOLD_PORT)], {})


def service_manifest(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(node)},
        "spec": {
            "selector": {ROLE_LABEL: "server", NODE_LABEL: node},
            "ports": [{"name": "hold", "port": HOLD_PORT, "targetPort": HOLD_PORT, "protocol": "TCP"}],
        },
    }


def hold_manifest(hold: Hold, image: str) -> dict[str, Any]:
    args = ["hold", "--target", hold.target, "--interval", HOLD_INTERVAL, "--duration", "0"]
    return _pod(hold.pod, hold.src, "hold", image, args, {"netconform.io/gate-dst": hold.dst})


@dataclass
class HoldState:
    """What one hold pod's log and phase say."""

    connects: int = 0
    breaks: list[tuple[str, str]] = field(default_factory=list)  # (at, detail)
    first_connected: str = ""
    summary: dict[str, Any] | None = None  # ok_summary: the hold process ended
    phase: str = ""
    problem: str = ""  # could not read it at all

    @property
    def established(self) -> bool:
        return self.connects > 0

    @property
    def survived(self) -> bool:
        return (
            self.established
            and not self.breaks
            and self.summary is None
            and self.phase == "Running"
            and not self.problem
        )

    def why_not(self) -> str:
        if self.problem:
            return self.problem
        if not self.established:
            return "never connected"
        if self.breaks:
            at, detail = self.breaks[0]
            more = f" (and {len(self.breaks) - 1} more breaks)" if len(self.breaks) > 1 else ""
            return f"broke at {at}: {detail}{more}"
        if self.summary is not None or self.phase != "Running":
            return f"the hold process ended (pod {self.phase or 'gone'})"
        return ""


def parse_hold_log(text: str) -> HoldState:
    """`probe hold` JSON lines (probe/README.md); other lines (runtime noise) are ignored."""
    state = HoldState()
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        kind, at, detail = ev.get("event"), str(ev.get("at", "")), ev.get("detail")
        if kind == "connected":
            state.connects += 1
            state.first_connected = state.first_connected or at
        elif kind == "broken":
            state.breaks.append((at, str(detail)))
        elif kind == "ok_summary":
            state.summary = detail if isinstance(detail, dict) else {}
    return state


# ---------------------------------------------------------------- comparing two runs


@dataclass
class Comparison:
    new_failures: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    not_run_now: list[str] = field(default_factory=list)
    passed: int = 0

    @property
    def blocks(self) -> bool:
        return bool(self.new_failures)


BAD = ("failed", "broken")


def compare(baseline: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> Comparison:
    """Test verdicts by node id. A test that did not exist before and fails now is a new failure."""
    c = Comparison()
    for nodeid, t in sorted(now.items()):
        before = baseline.get(nodeid, {}).get("outcome")
        if t["outcome"] in BAD:
            (c.still_failing if before in BAD else c.new_failures).append(nodeid)
        elif t["outcome"] == "passed":
            c.passed += 1
            if before in BAD:
                c.fixed.append(nodeid)
    c.not_run_now = sorted(set(baseline) - set(now))
    return c


def causes_of(tests: dict[str, dict[str, Any]], nodeids: list[str]) -> Counter[str]:
    """cause@node -> how many of these tests it explains (first-ranked cause per test)."""
    out: Counter[str] = Counter()
    for n in nodeids:
        causes = tests.get(n, {}).get("causes") or []
        out[causes[0] if causes else "undiagnosed"] += 1
    return out


def cause_for_hold(hold: Hold, tests: dict[str, dict[str, Any]]) -> str:
    """The diagnosed cause that names one of the hold's nodes, from the tests failing now."""
    counts: Counter[str] = Counter()
    for t in tests.values():
        if t.get("outcome") not in BAD:
            continue
        for cause in t.get("causes") or []:
            node = cause.partition("@")[2]
            if node in (hold.src, hold.dst):
                counts[cause] += 1
    if counts:
        return counts.most_common(1)[0][0]
    for t in tests.values():  # no node named: a failing pod path between the same nodes
        for p in t.get("paths") or []:
            if t.get("outcome") in BAD and {p.get("src_node"), p.get("dst_node")} == {hold.src, hold.dst}:
                return (t.get("causes") or ["undiagnosed"])[0]
    return ""


@dataclass
class Verdict:
    comparison: Comparison
    survived: list[Hold]
    broken: list[tuple[Hold, HoldState, str]]  # (hold, state, cause)
    not_established: list[Hold]

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCK if (self.comparison.blocks or self.broken) else EXIT_PASS


def judge(
    baseline: dict[str, dict[str, Any]],
    now: dict[str, dict[str, Any]],
    holds: list[Hold],
    states: dict[str, HoldState],
    established_at_baseline: set[str],
) -> Verdict:
    comparison = compare(baseline, now)
    survived, broken, never = [], [], []
    for h in holds:
        st = states.get(h.pod, HoldState(problem="no state read"))
        if h.pod not in established_at_baseline:
            never.append(h)  # a path that did not work before the upgrade cannot be broken by it
        elif st.survived:
            survived.append(h)
        else:
            broken.append((h, st, cause_for_hold(h, now)))
    return Verdict(comparison, survived, broken, never)


def summary(v: Verdict, baseline: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> str:
    c = v.comparison
    lines = []
    total_holds = len(v.survived) + len(v.broken)
    if v.exit_code == EXIT_PASS:
        lines.append(
            f"GATE PASSED: no new failures ({c.passed} tests pass), all {total_holds} long-lived connections survived"
        )
    else:
        what = []
        if c.new_failures:
            what.append(f"{len(c.new_failures)} new failure{'s' if len(c.new_failures) != 1 else ''}")
        if v.broken:
            what.append(f"{len(v.broken)} of {total_holds} long-lived connections broken")
        lines.append("GATE BLOCKED: " + ", ".join(what))
    if c.new_failures:
        lines.append("")
        lines.append("New failures by root cause:")
        for cause, n in causes_of(now, c.new_failures).most_common():
            lines.append(f"  {_cause_words(cause)} explains {n}")
        for nodeid in c.new_failures[:20]:
            msg = now[nodeid].get("message", "")
            lines.append(f"  - {nodeid}" + (f": {msg}" if msg else ""))
        if len(c.new_failures) > 20:
            lines.append(f"  ... and {len(c.new_failures) - 20} more")
    if v.broken:
        lines.append("")
        lines.append("Broken long-lived connections:")
        for h, st, cause in v.broken:
            lines.append(f"  - {h.label}: {st.why_not()}" + (f" — likely {_cause_words(cause)}" if cause else ""))
    if c.fixed:
        lines.append("")
        lines.append(f"Fixed since the baseline ({len(c.fixed)}):")
        lines.extend(f"  + {n}" for n in c.fixed[:20])
    if c.still_failing:
        lines.append("")
        lines.append(f"Failing before and after (not blocking, {len(c.still_failing)}):")
        for cause, n in causes_of(now, c.still_failing).most_common():
            lines.append(f"  {_cause_words(cause)} explains {n}")
    if v.not_established:
        lines.append("")
        lines.append(f"Not watched (no connection at the baseline, {len(v.not_established)}):")
        lines.extend(f"  . {h.label}" for h in v.not_established)
    if c.not_run_now:
        lines.append("")
        lines.append(f"In the baseline but not run now ({len(c.not_run_now)}): first {c.not_run_now[0]}")
    return "\n".join(lines) + "\n"


def _cause_words(cause: str) -> str:
    cid, _, node = cause.partition("@")
    return f"{cid} on {node}" if node else cid


# ---------------------------------------------------------------- cluster side


class Cluster:
    """The few API calls the gate makes, bounded; kubeconfig/context resolved like the suite."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from kubernetes import client as k8s

        from netconform import cluster as cl
        from netconform.errors import UsageError

        try:
            target = cl.resolve_target(kubeconfig, context)
        except UsageError as exc:
            raise GateError(str(exc), EXIT_USAGE) from None
        self.api = cl.make_api_client(target.configuration)
        self.core = k8s.CoreV1Api(self.api)
        self.context = target.context

    def namespace_exists(self) -> bool:
        from kubernetes.client.rest import ApiException

        try:
            ns = self.core.read_namespace(NAMESPACE, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise GateError(f"cannot read namespace {NAMESPACE}: {exc.status} {exc.reason}") from None
        return ns.status.phase != "Terminating"

    def ready_nodes(self) -> list[str]:
        from netconform import cluster as cl

        return [n.name for n in cl.select_nodes(cl.list_nodes(self.api), None, None)]

    def create(self, manifest: dict[str, Any]) -> Any:
        from kubernetes.client.rest import ApiException

        kind, name = manifest["kind"], manifest["metadata"]["name"]
        try:
            if kind == "Namespace":
                return self.core.create_namespace(manifest, _request_timeout=15)
            if kind == "Service":
                return self.core.create_namespaced_service(NAMESPACE, manifest, _request_timeout=15)
            return self.core.create_namespaced_pod(NAMESPACE, manifest, _request_timeout=15)
        except ApiException as exc:
            raise GateError(f"cannot create {kind.lower()} {name}: {exc.status} {exc.reason}") from None

    def pods(self) -> dict[str, Any]:
        items = self.core.list_namespaced_pod(NAMESPACE, _request_timeout=15).items
        return {p.metadata.name: p for p in items}

    def log(self, pod: str) -> str:
        return str(self.core.read_namespaced_pod_log(pod, NAMESPACE, _request_timeout=15) or "")

    def delete_namespace(self, wait_s: float = 90.0) -> str:
        from kubernetes.client.rest import ApiException

        try:
            self.core.delete_namespace(NAMESPACE, grace_period_seconds=0, _request_timeout=15)
        except ApiException as exc:
            if exc.status == 404:
                return f"namespace {NAMESPACE} was not there"
            raise GateError(f"cannot delete namespace {NAMESPACE}: {exc.status} {exc.reason}") from None
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                self.core.read_namespace(NAMESPACE, _request_timeout=10)
            except ApiException as exc:
                if exc.status == 404:
                    return f"removed namespace {NAMESPACE}"
            time.sleep(1)
        return f"namespace {NAMESPACE} still terminating after {wait_s:.0f}s; it finishes on its own"


def _wait(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        done, last = check()
        if done:
            return last
        time.sleep(1)
    raise GateError(f"{what} not done after {timeout_s:.0f}s: {last}")


def open_gate(cluster: Cluster, nodes: list[str], image: str) -> tuple[list[Hold], set[str]]:
    """Servers and Services first (holds need their addresses), then one hold pod per pair and path."""
    cluster.create(namespace_manifest(os.environ.get("USER", "ci") + "@" + os.uname().nodename))
    for n in nodes:
        cluster.create(server_manifest(n, image))
    service_ips = {n: cluster.create(service_manifest(n)).spec.cluster_ip for n in nodes}

    def servers_running() -> tuple[bool, Any]:
        pods = cluster.pods()
        ips = {n: getattr(pods.get(server_pod_name(n)), "status", None) for n in nodes}
        waiting = [n for n, st in ips.items() if st is None or st.phase != "Running" or not st.pod_ip]
        return (
            not waiting,
            {n: st.pod_ip for n, st in ips.items() if st} if not waiting else f"not Running on {waiting}",
        )

    pod_ips = _wait("gate servers Running", servers_running, READY_TIMEOUT_S)
    holds = []
    for h in planned_holds(nodes):
        host = pod_ips[h.dst] if h.via == "pod" else service_ips[h.dst]
        h = Hold(h.src, h.dst, h.via, h.pod, f"{host}:{HOLD_PORT}")
        cluster.create(hold_manifest(h, image))
        holds.append(h)

    def connected() -> tuple[bool, Any]:
        states = read_states(cluster, holds)
        pending = [h.pod for h in holds if not states[h.pod].established and not states[h.pod].breaks]
        return (not pending, states if not pending else f"{len(pending)} holds neither connected nor broken")

    try:
        states = _wait("hold connections", connected, CONNECT_TIMEOUT_S)
    except GateError:
        states = read_states(cluster, holds)  # some paths do not work at the baseline: they are not watched
    return holds, {h.pod for h in holds if states[h.pod].established and not states[h.pod].breaks}


def read_states(cluster: Cluster, holds: list[Hold]) -> dict[str, HoldState]:
    pods = cluster.pods()
    out = {}
    for h in holds:
        pod = pods.get(h.pod)
        if pod is None:
            out[h.pod] = HoldState(problem="hold pod is gone")
            continue
        try:
            state = parse_hold_log(cluster.log(h.pod))
        except Exception as exc:  # a log we cannot read is no verdict of survival
            state = HoldState(problem=f"cannot read its log: {str(exc).splitlines()[0][:120]}")
        state.phase = pod.status.phase if pod.status else ""
        out[h.pod] = state
    return out


# ---------------------------------------------------------------- running the suite


def run_suite(out_dir: Path, kubeconfig: str | None, context: str | None, extra: list[str]) -> dict[str, Any]:
    """The suite in a subprocess (its output streams to ours); returns the outcomes JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = out_dir / "outcomes.json"
    outcomes.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO / "suites"),
        "-p",
        "no:cacheprovider",
        f"--outcomes-json={outcomes}",
        f"--alluredir={out_dir / 'allure-results'}",
        "--clean-alluredir",
        f"--junitxml={out_dir / 'junit.xml'}",
        f"--matrix={out_dir / 'matrix.svg'}",
    ]
    if kubeconfig:
        cmd.append(f"--kubeconfig={kubeconfig}")
    if context:
        cmd.append(f"--context={context}")
    cmd += extra
    print(f"ci/gate: running the suite: {' '.join(cmd[3:])}", flush=True)
    done = subprocess.run(cmd, cwd=REPO)
    if not outcomes.is_file():
        raise GateError(f"the suite did not run (pytest exit {done.returncode}); see its output above")
    data = json.loads(outcomes.read_text())
    if not data.get("tests"):
        raise GateError(f"the suite ran no test (pytest exit {done.returncode})")
    return data


# ---------------------------------------------------------------- state


def save_state(state_dir: Path, data: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "gate.json").write_text(json.dumps(data, indent=1))


def load_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "gate.json"
    if not path.is_file():
        raise GateError(f"no gate state in {state_dir}: run `ci/gate baseline` first", EXIT_USAGE)
    return json.loads(path.read_text())


def holds_from_state(state: dict[str, Any]) -> list[Hold]:
    return [Hold(**h) for h in state["holds"]]


def baseline(state_dir: Path, kubeconfig: str | None, context: str | None, image: str, extra: list[str]) -> int:
    cluster = Cluster(kubeconfig, context)
    if cluster.namespace_exists():
        raise GateError(
            f"the gate is already open (namespace {NAMESPACE}): `ci/gate check`, or `ci/gate close` first", EXIT_USAGE
        )
    data = run_suite(state_dir / "baseline", kubeconfig, context, extra)
    nodes = cluster.ready_nodes()
    if len(nodes) < 2:
        raise GateError(f"the gate needs two Ready nodes for long-lived connections, found {len(nodes)}", EXIT_USAGE)
    try:
        holds, established = open_gate(cluster, nodes, image)
    except GateError:
        cluster.delete_namespace()
        raise
    save_state(
        state_dir,
        {
            "opened": time.time(),
            "context": cluster.context,
            "image": image,
            "nodes": nodes,
            "holds": [asdict(h) for h in holds],
            "established": sorted(established),
            "baseline": data["tests"],
        },
    )
    bad = [n for n, t in data["tests"].items() if t["outcome"] in BAD]
    print(f"ci/gate: baseline recorded: {len(data['tests'])} tests, {len(bad)} failing (they will not block)")
    print(f"ci/gate: gate open: namespace {NAMESPACE}, {len(established)} of {len(holds)} long-lived connections up")
    for h in holds:
        if h.pod not in established:
            print(f"ci/gate:   not watched (no connection now): {h.label}")
    print(f"ci/gate: state in {state_dir}; after the upgrade: ci/gate check")
    return EXIT_PASS


def check(state_dir: Path, kubeconfig: str | None, context: str | None, extra: list[str]) -> int:
    state = load_state(state_dir)
    cluster = Cluster(kubeconfig, context)
    if not cluster.namespace_exists():
        raise GateError(
            f"the gate is not open (no namespace {NAMESPACE}): run `ci/gate baseline` before the upgrade", EXIT_USAGE
        )
    holds = holds_from_state(state)
    data = run_suite(state_dir / "check", kubeconfig, context, extra)
    states = read_states(cluster, holds)  # after the suite: the connections lived through it, too
    verdict = judge(state["baseline"], data["tests"], holds, states, set(state["established"]))
    text = summary(verdict, state["baseline"], data["tests"])
    (state_dir / "check" / "summary.txt").write_text(text)
    (state_dir / "check" / "verdict.json").write_text(
        json.dumps(
            {
                "exit_code": verdict.exit_code,
                "new_failures": verdict.comparison.new_failures,
                "fixed": verdict.comparison.fixed,
                "still_failing": verdict.comparison.still_failing,
                "broken": [{"hold": asdict(h), "why": st.why_not(), "cause": cause} for h, st, cause in verdict.broken],
                "survived": [h.pod for h in verdict.survived],
                "not_watched": [h.pod for h in verdict.not_established],
            },
            indent=1,
        )
    )
    print()
    print(text, end="")
    print(f"ci/gate: summary in {state_dir / 'check' / 'summary.txt'}; exit {verdict.exit_code}")
    return verdict.exit_code


def close(state_dir: Path, kubeconfig: str | None, context: str | None) -> int:
    cluster = Cluster(kubeconfig, context)
    said = cluster.delete_namespace()
    gate = state_dir / "gate.json"
    if gate.is_file():
        gate.rename(state_dir / "gate.closed.json")
    print(f"ci/gate: {said}")
    return EXIT_PASS
