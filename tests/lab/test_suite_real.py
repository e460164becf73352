"""The suite's own behaviour, for real, on the lab: selection, xdist, cleanup, the sweep, interruption,
failure messages and their path properties, probes that never get Ready, missing permissions, exec
transport errors, and the Allure results / matrix of a real failing run.

Each test runs the real suite (pytest suites/) in a subprocess against the lab (marked `lab`, skipped
unless NETCONFORM_LAB_KUBECONFIG is set). Anything that deploys probes holds the shared lab lock;
the one fault run clears its faults (lab_lock does) before releasing it. tests/lab/test_faults.py
owns the fault matrix: this file injects faults once, only for what a failure looks like.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from netconform.workload.manifests import namespace_manifest
from netconform.workload.namespace import owner_token
from tests.lab.conftest import REPO, bound_account, lab, lab_lock, run_suite, suite_command, token_kubeconfig

pytestmark = pytest.mark.lab
NODES = ("lab-node-1", "lab-node-2", "lab-node-3")
MANAGED = "app.kubernetes.io/managed-by=netconform"
KUBE = "/var/lib/netconform-lab/bin/kube"
SVG = "{http://www.w3.org/2000/svg}"


# ---------------------------------------------------------------- helpers


def core(kubeconfig: str) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()  # certificates first: ApiClient builds its TLS pool from the configuration
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    return client.CoreV1Api(client.ApiClient(cfg))


def kubectl(kubeconfig: str, *args: str, check: bool = True, stdin: str | None = None) -> str:
    done = subprocess.run(
        [KUBE, "kubectl", f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )
    if check and done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def run_namespaces(kubeconfig: str) -> list[str]:
    return sorted(ns.metadata.name for ns in core(kubeconfig).list_namespace(label_selector=MANAGED).items)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    pytest.fail(f"waited {timeout_s:.0f}s for {what}")


def outcomes(out: str) -> dict[str, int]:
    """Counts from pytest's last summary line ('3 failed, 12 passed, 1 error in 20.1s')."""
    last = [line for line in out.splitlines() if re.search(r"\d+ (passed|failed|errors?|skipped)\b.* in [\d.]+s", line)]
    assert last, out[-3000:]
    plural = {"error": "errors", "warning": "warnings"}
    return {plural.get(word, word): int(n) for n, word in re.findall(r"(\d+) (\w+)", last[-1])}


def pod_cidrs(kubeconfig: str) -> dict[str, str]:
    return {n.metadata.name: n.spec.pod_cidr for n in core(kubeconfig).list_node().items}


class NamespaceWatcher:
    """Polls the netconform run namespaces while a run goes on: every name seen, and its pods."""

    def __init__(self, kubeconfig: str, ignore: set[str] = frozenset()) -> None:
        self.api, self.ignore = core(kubeconfig), set(ignore)
        self.seen: set[str] = set()
        self.events: set[str] = set()  # "component: reason: message" of the events in the run namespaces
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.wait(0.5):
            try:
                items = self.api.list_namespace(label_selector=MANAGED, _request_timeout=5).items
            except Exception:  # a slow API for one poll is no verdict
                continue
            self.seen |= {ns.metadata.name for ns in items} - self.ignore
            for name in self.seen:
                try:
                    events = self.api.list_namespaced_event(name, _request_timeout=5).items
                except Exception:
                    continue
                self.events |= {f"{e.source.component if e.source else ''}: {e.reason}: {e.message}" for e in events}

    def __enter__(self) -> NamespaceWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def ready_pods(api: Any, namespace: str) -> list[Any]:
    pods = api.list_namespaced_pod(namespace, label_selector="netconform.io/role", _request_timeout=5).items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]


def start_suite(kubeconfig: str, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        suite_command(kubeconfig, f"--basetemp={tmp_path / 'bt'}", "--no-allure", "--no-diagnose", *args),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # SIGINT must reach Python's handler even if whoever started us ignores it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


# a server and a client per node (3) and nc-single on the first node; the NetworkPolicy check's pods
# only when it is selected (these runs deselect it on flannel)
PROBE_PODS = {("server", n) for n in NODES} | {("client", n) for n in NODES} | {("single", NODES[0])}


def wait_probes_ready(kubeconfig: str, proc: subprocess.Popen[str]) -> tuple[str, list[Any]]:
    """The run's namespace and its probe pods once each of PROBE_PODS is Ready (by role and node, not
    by count: pods of other roles may be Ready first)."""
    api = core(kubeconfig)

    def ready() -> tuple[str, list[Any]] | None:
        assert proc.poll() is None, "the run ended before its probes were Ready"
        for name in run_namespaces(kubeconfig):
            pods = [p for p in ready_pods(api, name) if (role_of(p), p.spec.node_name) in PROBE_PODS]
            if {(role_of(p), p.spec.node_name) for p in pods} == PROBE_PODS:
                return name, pods
        return None

    return wait_for("the run's probes to be Ready", ready, timeout_s=120)


def role_of(pod: Any) -> str:
    return str((pod.metadata.labels or {}).get("netconform.io/role", ""))


def dialing_pods(pods: list[Any]) -> set[str]:
    """Which of these pods run `probe dial` right now. The lab's containers are processes on this
    machine; a pod's processes sit in a cgroup named after its UID."""
    by_uid = {p.metadata.uid: p.metadata.name for p in pods}
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if len(argv) < 2 or not argv[0].endswith(b"probe") or argv[1] != b"dial":
                continue
            cgroup = (proc / "cgroup").read_text()
        except OSError:
            continue
        found |= {name for uid, name in by_uid.items() if f"pod{uid}" in cgroup}
    return found


def wait_dialing(proc: subprocess.Popen[str], pods: list[Any], timeout_s: float = 120) -> set[str]:
    def seen() -> set[str]:
        assert proc.poll() is None, "the run ended before it dialed (or the dial was too quick to see)"
        return dialing_pods(pods)

    return wait_for("`probe dial` to run in a client pod", seen, timeout_s=timeout_s, every_s=0.02)


def assert_run_namespace_gone(kubeconfig: str, out: str) -> None:
    """The run said it removed its namespace, once, and the API agrees."""
    removed = re.findall(r"^netconform: removed namespace (netconform-\w+) \(", out, re.M)
    assert len(removed) == 1, out[-3000:]
    assert removed[0] not in run_namespaces(kubeconfig)


# ---------------------------------------------------------------- healthy runs


def test_healthy_xdist_run_sets_up_once_dials_once_sweeps_dead_runs_and_leaves_nothing(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path
) -> None:
    api = core(admin_kubeconfig)
    tag = secrets.token_hex(2)
    old = namespace_manifest(f"0ld{tag}", keep=False)
    old.metadata.annotations["netconform.io/created"] = str(int(time.time()) - 3 * 3600)  # a run 3h ago ...
    old.metadata.annotations["netconform.io/owner"] = "elsewhere/bootabcd/1"  # ... of another machine: age decides
    dead = namespace_manifest(f"dead{tag}", keep=False)  # a run whose pytest process is gone
    dead.metadata.annotations["netconform.io/owner"] = owner_token().rsplit("/", 1)[0] + "/999999999"
    alive = namespace_manifest(f"a11ve{tag}", keep=False)  # this very test process: alive, left alone
    # someone else's namespace that carries netconform's labels and looks 30 days old: never ours
    foreign = namespace_manifest(f"f0reign{tag}", keep=False)
    foreign.metadata.name = f"team-a-prod-{tag}"
    foreign.metadata.annotations["netconform.io/created"] = str(int(time.time()) - 30 * 86400)
    seeded = {ns.metadata.name for ns in (old, dead, alive, foreign)}
    with lab_lock():
        try:
            for ns in (old, dead, alive, foreign):
                api.create_namespace(ns)
            with NamespaceWatcher(admin_kubeconfig, ignore=seeded) as watcher:
                run = run_suite(lab_kubeconfig, "-n", "2", "-v", "-rs", "--no-allure", f"--basetemp={tmp_path / 'bt'}")
            out = run.stdout + run.stderr
            assert run.returncode == 0, out[-5000:]
            swept = {old.metadata.name, dead.metadata.name}
            left = wait_for(
                "the swept namespaces to go",
                lambda: (names := set(run_namespaces(admin_kubeconfig))) and not names & swept and names,
                timeout_s=60,
                every_s=1,
            )
        finally:
            for name in seeded:
                kubectl(
                    admin_kubeconfig, "delete", "namespace", name, "--ignore-not-found", "--wait=false", check=False
                )
    assert alive.metadata.name in left  # a live run's namespace is not a leftover
    assert foreign.metadata.name in left  # named otherwise: not a run namespace, whatever its labels say
    for line in (
        f"netconform: left namespace {foreign.metadata.name} alone: it carries app.kubernetes.io/managed-by="
        "netconform but is not named netconform-<run id> after its netconform.io/run-id label",
        f"netconform: removed leftover namespace {old.metadata.name} (created 3h ago by a run on elsewhere)",
        f"netconform: removed leftover namespace {dead.metadata.name} (its pytest process is gone)",
        "netconform: 3 of 3 nodes selected: lab-node-1 (10.99.0.11), lab-node-2 (10.99.0.12), lab-node-3 (10.99.0.13)",
    ):
        assert line in out, out[:3000]
    assert f"netconform: removed leftover namespace {alive.metadata.name}" not in out
    assert re.search(r"^netconform: cluster .* at https://\S+, Kubernetes v1\.\d+\.\d+\S*, run \w+$", out, re.M), out[
        :2000
    ]
    assert re.search(
        r"test_tcp_cross_node\[ipv4-lab-node-1-to-lab-node-2\] PASSED|PASSED .*test_tcp_cross_node\[ipv4-lab-node-1-to-lab-node-2\]",
        out,
    )
    counts = outcomes(out)
    assert counts.get("passed", 0) >= 75 and not counts.get("failed") and not counts.get("errors"), counts
    # two workers, one deployment: one run namespace ever existed, one `probe dial` per client pod (3 nodes)
    # and the one exec that reads the pods' MTU, besides the execs of the wait for kube-proxy (said apart)
    assert len(watcher.seen) == 1, watcher.seen
    settle = re.search(r"probes Ready in [\d.]+s \(of which [\d.]+s and (\d+) probe execs until every client pod", out)
    assert settle, out[-2000:]
    assert 3 <= int(settle.group(1)) <= 3 * 30, settle.group(0)  # a round is one exec per client pod
    # where the NetworkPolicy check runs (an enforcing CNI's lab), each of its rounds is one exec per client
    # pod and one for the allowed client
    rounds = re.search(r"NetworkPolicy (?:not )?in effect after [\d.]+s \((\d+) rounds\)", out)
    policy_execs = 4 * int(rounds.group(1)) if rounds else 0
    execs = 4 + int(settle.group(1)) + policy_execs
    assert re.search(rf"^netconform: \d+ API requests, {execs} probe execs$", out, re.M), out[-2000:]
    assert f"netconform: removed namespace {next(iter(watcher.seen))} (" in out
    assert_run_namespace_gone(admin_kubeconfig, out)


def test_k_selects_by_node_id(lab_kubeconfig: str, admin_kubeconfig: str) -> None:
    # --collect-only reads and never writes: a leftover that a real run would sweep is left in place
    stale = namespace_manifest(f"c0llect{secrets.token_hex(2)}", keep=False)
    stale.metadata.annotations["netconform.io/owner"] = owner_token().rsplit("/", 1)[0] + "/999999999"
    with lab_lock():  # another run in the lock's queue would sweep it
        core(admin_kubeconfig).create_namespace(stale)
        try:
            run = run_suite(lab_kubeconfig, "--collect-only", "-q", "--no-allure", "-k", "lab-node-2 and cross_node")
            assert stale.metadata.name in run_namespaces(admin_kubeconfig)
        finally:
            kubectl(admin_kubeconfig, "delete", "namespace", stale.metadata.name, "--ignore-not-found", "--wait=false")
    lines = [line for line in run.stdout.splitlines() if "::" in line]
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert lines and all("lab-node-2" in line and "cross_node" in line for line in lines)
    # 4 ordered pairs touch lab-node-2 (1->2, 2->1, 2->3, 3->2) x tcp, udp, source IP
    assert len(lines) == 4 * 3, lines


def test_single_node_run_skips_cross_node_with_reason_and_keep_leaves_the_namespace(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path
) -> None:
    """Also: --no-allure turns the reporting off, the matrix included."""
    matrix = tmp_path / "m.svg"
    with lab_lock():
        run = run_suite(
            lab_kubeconfig,
            "--nodes=kubernetes.io/os=linux",
            "--node-limit=1",
            "-rs",
            "--keep",
            "--no-allure",
            f"--matrix={matrix}",
            "--no-diagnose",
            f"--basetemp={tmp_path / 'bt'}",
        )
        out = run.stdout + run.stderr
        kept = re.findall(r"^netconform: kept namespace (netconform-\w+) \(--keep\)", out, re.M)
        try:
            present = [ns for ns in kept if ns in run_namespaces(admin_kubeconfig)]
            pods = [p for ns in present for p in core(admin_kubeconfig).list_namespaced_pod(ns).items]
        finally:
            for ns in kept:
                kubectl(admin_kubeconfig, "delete", "namespace", ns, "--wait=true", "--timeout=90s", check=False)
    assert run.returncode == 0, out[-4000:]
    assert "netconform: 1 of 3 nodes selected: lab-node-1 (10.99.0.11)" in out
    assert "netconform: left out beyond --node-limit 1: lab-node-2, lab-node-3" in out
    skipped = re.search(r"SKIPPED \[(\d+)\] .*only one node selected \(lab-node-1\): cross-node paths need two", out)
    assert skipped, out[-3000:]
    assert len(kept) == 1 and present == kept, (kept, present)
    assert f"remove it with: kubectl delete namespace {kept[0]}" in out
    # the kept probes ran on the one selected node only
    assert pods and {p.spec.node_name for p in pods} == {"lab-node-1"}
    assert kept[0] not in run_namespaces(admin_kubeconfig)
    assert not matrix.exists() and "Allure results in" not in out


# ---------------------------------------------------------------- one real fault run


def cells(svg: Path, check: str) -> dict[tuple[str, str], str]:
    root = ET.parse(svg).getroot()
    panel = next(g for g in root.iter(f"{SVG}g") if g.get("data-check") == check)
    return {
        (g.get("data-src"), g.get("data-dst")): g.get("data-outcome")
        for g in panel.iter(f"{SVG}g")
        if g.get("class") == "cell"
    }


def test_failures_are_one_line_with_the_path_and_source_ip_names_the_owner(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path
) -> None:
    """stale-arp on lab-node-2 (its cross-node paths time out) plus ip-masq on lab-node-1 (its pods leave as
    the node's flannel.1 address), -n 2 with Allure results and the matrix: also the reporting plugin's checks."""
    junit, allure, svg = tmp_path / "junit.xml", tmp_path / "allure", tmp_path / "matrix.svg"
    allure.mkdir()
    (allure / "stale-result.json").write_text("{}")  # from an earlier run: must go
    cidr = pod_cidrs(admin_kubeconfig)["lab-node-1"]
    with lab_lock():
        lab("fault", "stale-arp", "--node", "lab-node-2")
        lab("fault", "ip-masq", "--node", "lab-node-1")
        run = run_suite(
            lab_kubeconfig,
            "-n",
            "2",
            "--tb=line",
            "--no-diagnose",
            "--dial-timeout=1",
            f"--junitxml={junit}",
            f"--alluredir={allure}",
            "--clean-alluredir",
            f"--matrix={svg}",
            f"--basetemp={tmp_path / 'bt'}",
            "-k",
            "test_pod_to_pod or test_source_ip",
        )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-4000:]
    failed = {
        case.get("name"): (
            case.find("failure").get("message"),
            {p.get("name"): p.get("value") for p in case.iter("property")},
        )
        for case in ET.parse(junit).getroot().iter("testcase")
        if case.find("failure") is not None
    }
    # the message is one line naming the path (--tb=line prints just that); the path is also a property
    # diagnosis and reports read
    one_liners = [line for line in out.splitlines() if re.search(r"\.py:\d+: AssertionError: nc-client-", line)]
    assert len(one_liners) == len(failed), one_liners
    first = {name: m.splitlines()[0] for name, (m, _) in failed.items()}
    assert all(any(line.endswith(f) for line in one_liners) for f in first.values()), (first, one_liners)
    message, props = (
        first["test_tcp_cross_node[ipv4-lab-node-1-to-lab-node-2]"],
        failed["test_tcp_cross_node[ipv4-lab-node-1-to-lab-node-2]"][1],
    )
    assert re.fullmatch(
        r"AssertionError: nc-client-\w+ \(10\.244\.\d+\.\d+, lab-node-1\) -> 10\.244\.\d+\.\d+:8080 \(lab-node-2\): "
        r"timeout after 1s",
        message,
    ), message
    path = json.loads(props["netconform_path"])  # JSON, as a CI system reads it
    assert (path["check"], path["src_node"], path["dst_node"], path["error"]) == (
        "pod_to_pod",
        "lab-node-1",
        "lab-node-2",
        "timeout",
    ), props
    # paths not touching lab-node-2 still pass; every cross-node pod path touching it fails
    touching = {name for name in failed if name.startswith(("test_tcp_cross_node", "test_udp_cross_node"))}
    assert touching == {
        f"test_{p}_cross_node[ipv4-{a}-to-{b}]"
        for p in ("tcp", "udp")
        for a in NODES
        for b in NODES
        if a != b and "lab-node-2" in (a, b)
    }, sorted(failed)
    # ip-masq: the server on lab-node-3 saw lab-node-1's flannel.1 address, and the message says whose it is
    message, props = (
        first["test_cross_node_server_sees_client_pod_ip[ipv4-lab-node-1-to-lab-node-3]"],
        failed["test_cross_node_server_sees_client_pod_ip[ipv4-lab-node-1-to-lab-node-3]"][1],
    )
    base = cidr.split("/")[0]
    assert re.fullmatch(
        rf"AssertionError: nc-client-\w+ \(10\.244\.\d+\.\d+, lab-node-1\) -> 10\.244\.\d+\.\d+:8080 \(lab-node-3\): "
        rf"server saw {re.escape(base)} instead of 10\.244\.\d+\.\d+, which is lab-node-1's flannel\.1 address "
        rf"\(\.0 of its podCIDR {re.escape(cidr)}\)",
        message,
    ), message
    path = json.loads(props["netconform_path"])
    assert (path["check"], path["seen_ip"]) == ("source_ip", base), props
    assert (
        "test_cross_node_server_sees_client_pod_ip[ipv4-lab-node-3-to-lab-node-1]" not in failed
    )  # only lab-node-1 masquerades

    # reporting: each result once in a directory cleaned once (two workers), labels, steps, matrix
    results = [json.loads(p.read_text()) for p in allure.glob("*-result.json")]
    names = [r["name"] for r in results]
    counts = outcomes(out)
    assert not (allure / "stale-result.json").exists()
    assert len(names) == len(set(names)) == sum(counts.get(k, 0) for k in ("passed", "failed", "skipped")), counts
    assert (allure / "categories.json").is_file()
    props_text = (allure / "environment.properties").read_text()
    assert "nodes.count=3" in props_text and re.search(r"Kubernetes\.version=v1\.\d+", props_text), props_text
    cross = next(r for r in results if r["name"] == "test_tcp_cross_node[ipv4-lab-node-1-to-lab-node-2]")
    labels = {label["name"]: label["value"] for label in cross["labels"]}
    assert labels["epic"] == "Pod to pod" and labels["story"] == "lab-node-1 → lab-node-2 (ipv4)"
    assert cross["status"] == "failed"
    steps = [s["name"] for s in cross["steps"]]
    assert any(s.startswith("dial tcp lab-node-1 -> 10.244.") and "(lab-node-2)" in s for s in steps), steps
    assert any(s.startswith("setup: probes in namespace netconform-") for s in steps), steps
    pod_cells = cells(svg, "pod_to_pod")
    assert {k for k, v in pod_cells.items() if v == "failed"} == {
        (a, b) for a in NODES for b in NODES if a != b and "lab-node-2" in (a, b)
    }, pod_cells
    assert_run_namespace_gone(admin_kubeconfig, out)


# ---------------------------------------------------------------- setup errors


def test_probes_not_ready_fail_once_with_every_reason(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path
) -> None:
    """A real image that cannot be pulled: the lab's nodes have no route out, so the pull fails on the node."""
    with lab_lock(), NamespaceWatcher(admin_kubeconfig) as watcher:
        run = run_suite(
            lab_kubeconfig,
            "--probe-image=registry.invalid/none:1",
            "--ready-timeout=25",
            "-n",
            "2",
            "-k",
            "test_dns",
            "--no-allure",
            "--no-diagnose",
            f"--basetemp={tmp_path / 'bt'}",
        )
    out = run.stdout + run.stderr
    # the run stops at the first setup error (one per xdist worker) instead of repeating it for every test
    assert run.returncode == pytest.ExitCode.INTERRUPTED, out[-4000:]
    assert outcomes(out).get("errors", 0) <= 2
    assert "Interrupted: netconform: probes not Ready after" in out, out[-3000:]
    line = next(line for line in out.splitlines() if "netconform: probes not Ready after" in line)
    for role in ("client", "server"):
        for node in NODES:
            assert re.search(rf"nc-{role}-\w+ on {node}", line), line
    assert re.search(r"(ErrImagePull|ImagePullBackOff) for image registry\.invalid/none:1", line), line
    # the kubelet's own words: the pull failed on the node, which has no route out (not even to a resolver)
    pulls = [e for e in watcher.events if "Failed" in e and "registry.invalid/none:1" in e]
    assert pulls and all(e.startswith("kubelet: ") for e in pulls), watcher.events
    assert any(re.search(r"network is unreachable", e, re.I) for e in pulls), pulls
    assert len(watcher.seen) == 1, watcher.seen  # the second worker read the shared error: no second deploy
    # the run namespace is gone
    wait_for("the run namespace to go", lambda: not watcher.seen & set(run_namespaces(admin_kubeconfig)), timeout_s=60)


def test_exec_transport_errors_are_errors_not_failures(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path
) -> None:
    """The client pod on lab-node-2 is force-deleted while its `probe dial` runs: the exec stream breaks and
    the retry finds no pod, for real. Its tests are errors (could not run the probe), not network failures."""
    with lab_lock():
        # 1000 connections per stability target: a dial long enough to delete the pod under it
        proc = start_suite(
            lab_kubeconfig, tmp_path, "-k", "reaches_every_backend or stability", "--stability-count=1000", "-rE"
        )
        try:
            namespace, pods = wait_probes_ready(admin_kubeconfig, proc)
            client = next(
                p for p in pods if p.metadata.name.startswith("nc-client-") and p.spec.node_name == "lab-node-2"
            )
            victim = client.metadata.name
            wait_dialing(proc, [client])
            kubectl(admin_kubeconfig, "-n", namespace, "delete", "pod", victim, "--grace-period=0", "--force")
            out, _ = proc.communicate(timeout=300)
        finally:
            proc.kill()
    counts = outcomes(out)
    # 4 tests per source node: ClusterIP tcp/udp reaches every backend, NodePort and ClusterIP stability
    assert counts.get("errors") == 4 and counts.get("passed") == 8 and not counts.get("failed"), out[-4000:]
    assert re.search(rf"could not run the probe in {victim} \(lab-node-2\): .+ \(tried 2x\)", out), out[-4000:]
    assert_run_namespace_gone(admin_kubeconfig, out)


@pytest.mark.parametrize(
    "sig, workers",
    [(signal.SIGINT, []), (signal.SIGTERM, ["-n", "2"])],
    ids=["sigint", "sigterm-xdist"],
)
def test_interrupted_run_still_removes_its_namespace(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path, sig: signal.Signals, workers: list[str]
) -> None:
    with lab_lock():
        proc = start_suite(lab_kubeconfig, tmp_path, "-q", "--stability-count=1000", *workers)
        try:
            namespace, pods = wait_probes_ready(admin_kubeconfig, proc)
            wait_dialing(proc, pods)  # mid-run: while the probes dial
            proc.send_signal(sig)
            out, _ = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-4000:]
    assert "KeyboardInterrupt" in out
    assert f"netconform: removed namespace {namespace} (" in out, out[-3000:]
    assert_run_namespace_gone(admin_kubeconfig, out)


# ---------------------------------------------------------------- user errors that need a cluster


def assert_one_sentence(run: subprocess.CompletedProcess[str], pattern: str) -> None:
    out = run.stdout + run.stderr
    assert run.returncode == 4, out[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR: netconform: ")]
    assert len(errors) == 1 and re.fullmatch(pattern, errors[0].removeprefix("ERROR: netconform: ")), out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out


def core_rules() -> list[dict[str, Any]]:
    docs = yaml.safe_load_all((REPO / "suites" / "rbac.yaml").read_text())
    role = next(d for d in docs if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "netconform")
    return list(role["rules"])


def rule_words(rule: dict[str, Any]) -> list[str]:
    """How the preflight names a rule's verbs: `create pods/exec`, `list endpointslices.discovery.k8s.io`."""
    group = rule["apiGroups"][0]
    return [f"{v} {r}{'.' + group if group else ''}" for r in rule["resources"] for v in rule["verbs"]]


@pytest.mark.parametrize("index", range(len(core_rules())), ids=[" ".join(rule_words(r))[:40] for r in core_rules()])
def test_each_missing_permission_is_named_before_anything_is_deployed(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path, index: int
) -> None:
    """A ServiceAccount bound to ClusterRole netconform minus one rule: one sentence naming its verbs, exit 4."""
    rules = core_rules()
    removed = rules.pop(index)
    tag = secrets.token_hex(3)
    scratch, role = f"nc-rbac-test-{tag}", f"nc-rbac-test-{tag}"
    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": scratch}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": scratch}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": scratch}],
        },
    ]
    try:
        kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))
        kc = tmp_path / "kubeconfig"
        kc.write_text(token_kubeconfig(admin_kubeconfig, scratch, "runner", "limited"))
        before = run_namespaces(admin_kubeconfig)
        started = time.monotonic()
        run = run_suite(str(kc), "--no-allure", "--no-diagnose")
        took = time.monotonic() - started
        assert run_namespaces(admin_kubeconfig) == before  # it stopped before creating anything
    finally:
        kubectl(admin_kubeconfig, "delete", "clusterrolebinding,clusterrole", role, "--ignore-not-found", check=False)
        kubectl(admin_kubeconfig, "delete", "namespace", scratch, "--ignore-not-found", "--wait=false", check=False)
    assert_one_sentence(
        run,
        re.escape(f"context limited lacks permissions netconform needs: {', '.join(rule_words(removed))} ")
        + re.escape("(apply suites/rbac.yaml, or `netconform rbac`, and bind ClusterRole netconform)"),
    )
    assert took < 10, f"the preflight took {took:.1f}s"


def test_without_the_inspect_role_the_run_says_so_once_and_checks_still_run(
    admin_kubeconfig: str, tmp_path: Path
) -> None:
    with bound_account(admin_kubeconfig, "netconform", "no-inspect") as kc:
        run = run_suite(kc, "-q", "-k", "dns", f"--alluredir={tmp_path / 'allure'}")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    said = [line for line in out.splitlines() if line.startswith("netconform: not permitted to read")]
    assert len(said) == 1 and "list daemonsets.apps" in said[0] and "configmaps" in said[0], out[-3000:]
    assert "Forbidden" not in out and "Traceback" not in out


def test_selector_matching_no_node(lab_kubeconfig: str) -> None:
    run = run_suite(lab_kubeconfig, "--node-selector=pool=none", "--no-allure", "--no-diagnose")
    assert_one_sentence(run, re.escape("no schedulable Ready node matches --node-selector 'pool=none'"))


def test_no_schedulable_node_names_every_node(lab_kubeconfig: str, admin_kubeconfig: str) -> None:
    """Every lab node cordoned (under the lab lock, uncordoned in finally): nothing to deploy on."""
    with lab_lock():
        try:
            kubectl(admin_kubeconfig, "cordon", *NODES)
            run = run_suite(lab_kubeconfig, "--no-allure", "--no-diagnose")
        finally:
            kubectl(admin_kubeconfig, "uncordon", *NODES, check=False)
    assert_one_sentence(
        run,
        re.escape(
            "no node is both Ready and schedulable: lab-node-1 (cordoned), lab-node-2 (cordoned), lab-node-3 (cordoned)"
        ),
    )
