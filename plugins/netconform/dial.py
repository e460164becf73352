"""Batched dialing: one `probe dial` exec per client pod carries every target of every check.

The exec is a transport; what comes back is data. A websocket/API error or output that is not the
probe's JSON is a *transport* failure (retried once, then reported as "could not run the probe in
<pod>"), never a network verdict. A target that timed out is a network verdict.
"""

from __future__ import annotations

import concurrent.futures
import errno
import json
import math
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest
import websocket
from kubernetes import client as k8s
from kubernetes.stream import stream

from netconform.cluster import Cluster, CountingApiClient, NodeInfo, run_id, selected_nodes
from netconform.errors import ProbeRunError
from netconform.probes import HTTP_PORT, UDP_PORT, Deployment, fail_run, once_per_run, shared_dir

PROBE_BINARY = "/probe"
ERROR_WORDS = {
    "timeout": "timeout",
    "refused": "connection refused",
    "reset": "connection reset",
    "unreachable": "unreachable",
    "dns": "DNS lookup failed",
}


@dataclass(frozen=True)
class Target:
    """One thing a client pod dials. `check` and `dst_node` stay here; only the spec goes to the probe."""

    id: str
    proto: str  # tcp | udp | dns
    host: str
    port: int
    check: str
    count: int = 1
    dst_node: str | None = None
    dst_label: str = ""  # what `host` is when it is not a pod on dst_node, e.g. "ClusterIP nc-server"
    max_failures: int = 0  # the probe stops this target after so many failures (0: never)

    def spec(self) -> dict[str, Any]:
        spec = {"id": self.id, "proto": self.proto, "host": self.host, "port": self.port, "count": self.count}
        if self.max_failures:
            spec["max_failures"] = self.max_failures
        return spec


@dataclass
class Attempt:
    ok: bool
    error: str = ""
    detail: str = ""
    connect_ms: float = 0.0
    total_ms: float = 0.0
    server_hostname: str = ""
    server_node: str = ""
    client_ip_seen: str = ""

    @classmethod
    def from_probe(cls, raw: dict[str, Any]) -> Attempt:
        return cls(
            ok=bool(raw.get("ok")),
            error=str(raw.get("error") or ""),
            detail=str(raw.get("detail") or ""),
            connect_ms=float(raw.get("connect_ms") or 0.0),
            total_ms=float(raw.get("total_ms") or 0.0),
            server_hostname=str(raw.get("server_hostname") or ""),
            server_node=str(raw.get("server_node") or ""),
            client_ip_seen=str(raw.get("client_ip_seen") or ""),
        )


@dataclass
class DialResult:
    source_pod: str
    source_ip: str
    source_node: str
    target_id: str
    check: str
    proto: str
    host: str
    port: int
    dest_node: str | None
    attempts: list[Attempt]
    dest_label: str = ""
    timeout_ms: int = 0
    addresses: list[str] = field(default_factory=list)  # dns only

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and all(a.ok for a in self.attempts)

    @property
    def failures(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok]

    @property
    def success_ratio(self) -> float:
        return (len(self.attempts) - len(self.failures)) / len(self.attempts) if self.attempts else 0.0

    @property
    def backends(self) -> list[str]:
        """Server hostnames that answered, sorted."""
        return sorted({a.server_hostname for a in self.attempts if a.ok and a.server_hostname})

    @property
    def seen_ips(self) -> list[str]:
        return sorted({a.client_ip_seen for a in self.attempts if a.ok and a.client_ip_seen})

    def connect_percentile(self, pct: float) -> float | None:
        return percentile([a.connect_ms for a in self.attempts if a.ok], pct)

    @property
    def endpoint(self) -> str:
        return self.host if self.proto == "dns" else f"{self.host}:{self.port}"

    def path(self) -> str:
        """`nc-client-abcde (10.244.1.5, lab-node-2) -> 10.244.2.7:8080 (lab-node-3)`"""
        where = self.dest_label or self.dest_node
        dest = f"{self.endpoint} ({where})" if where else self.endpoint
        proto = "" if self.proto == "tcp" else f"{self.proto.upper()} "
        return f"{self.source_pod} ({self.source_ip}, {self.source_node}) -> {proto}{dest}"

    def what_went_wrong(self) -> str:
        """The failures in words: `timeout after 2s`, `3/100 failed: timeout after 2s (x2), connection refused`."""
        failed = self.failures
        if not self.attempts:
            return "the probe returned no attempt"
        if not failed:
            return "ok"
        kinds: dict[str, int] = {}
        for attempt in failed:
            words = self._error_words(attempt)
            kinds[words] = kinds.get(words, 0) + 1
        parts = [f"{words} (x{n})" if n > 1 else words for words, n in kinds.items()]
        text = ", ".join(parts)
        if len(self.attempts) > 1:
            text = f"{len(failed)}/{len(self.attempts)} attempts failed: {text}"
        return text

    def _error_words(self, attempt: Attempt) -> str:
        kind = attempt.error or "other"
        if kind == "timeout" and self.timeout_ms:
            return f"timeout after {self.timeout_ms / 1000:g}s"
        words = ERROR_WORDS.get(kind)
        if words and kind in ("unreachable", "dns") and attempt.detail:
            return f"{words} ({attempt.detail})"
        return words or (attempt.detail or kind)

    def describe(self) -> str:
        return f"{self.path()}: {self.what_went_wrong()}"

    def path_info(self, check: str | None = None) -> dict[str, Any]:
        """The `netconform_path` user property (contract: diagnosis/reporting map failures without parsing)."""
        first_failure = self.failures[0] if self.failures else None
        seen = self.seen_ips
        return {
            "check": check or self.check,
            "src_node": self.source_node,
            "src_pod": self.source_pod,
            "src_ip": self.source_ip,
            "dst_node": self.dest_node,
            "target": self.endpoint,
            "proto": self.proto,
            "error": (first_failure.error or "other") if first_failure else None,
            "seen_ip": seen[0] if len(seen) == 1 else (seen or None),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DialResult:
        return cls(**{**data, "attempts": [Attempt(**a) for a in data["attempts"]]})


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest, not an interpolation)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# ---------------------------------------------------------------- spec and output


@dataclass(frozen=True)
class Source:
    """A client pod that dials."""

    pod: str
    ip: str
    node: str


def build_spec(targets: list[Target], timeout_ms: int, concurrency: int = 64) -> dict[str, Any]:
    return {"timeout_ms": timeout_ms, "concurrency": concurrency, "targets": [t.spec() for t in targets]}


def worst_case_seconds(targets: list[Target], timeout_ms: int, concurrency: int = 64) -> float:
    """How long `probe dial` may legitimately take if every attempt times out (bounds the exec wait)."""
    if not targets:
        return 0.0
    # dns lookups may try every search domain; allow a few resolver timeouts
    per_target = [t.count * timeout_ms / 1000 * (3 if t.proto == "dns" else 1) for t in targets]
    return max(per_target) + sum(per_target) / concurrency


def parse_output(source: Source, targets: list[Target], stdout: str, timeout_ms: int) -> list[DialResult]:
    """Turn `probe dial` stdout into one DialResult per target. Raises ProbeRunError if it is not the probe's JSON."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        snippet = stdout.strip().replace("\n", " ")[:160] or "nothing"
        raise ProbeRunError(f"output is not JSON: {snippet}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ProbeRunError("output has no 'results' list")
    by_id = {r.get("id"): r for r in doc["results"] if isinstance(r, dict)}
    results = []
    for target in targets:
        raw = by_id.get(target.id)
        if raw is None:
            attempts = [Attempt(ok=False, error="other", detail="the probe returned no result for this target")]
            addresses: list[str] = []
        else:
            attempts = [Attempt.from_probe(a) for a in raw.get("attempts") or []]
            addresses = [str(a) for a in raw.get("addresses") or []]
        results.append(
            DialResult(
                source_pod=source.pod,
                source_ip=source.ip,
                source_node=source.node,
                target_id=target.id,
                check=target.check,
                proto=target.proto,
                host=target.host,
                port=target.port,
                dest_node=target.dst_node,
                dest_label=target.dst_label,
                attempts=attempts,
                timeout_ms=timeout_ms,
                addresses=addresses,
            )
        )
    return results


# ---------------------------------------------------------------- running


@dataclass
class SourceOutcome:
    """What one client pod's dial produced: results, or why the probe could not be run there."""

    source: Source
    results: list[DialResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    tries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": asdict(self.source),
            "results": [r.to_dict() for r in self.results],
            "error": self.error,
            "seconds": self.seconds,
            "tries": self.tries,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceOutcome:
        return cls(
            source=Source(**data["source"]),
            results=[DialResult.from_dict(r) for r in data["results"]],
            error=data["error"],
            seconds=data["seconds"],
            tries=data["tries"],
        )


def exec_probe(configuration: k8s.Configuration, namespace: str, pod: str, spec: dict[str, Any], wait_s: float) -> str:
    """Run `probe dial` in `pod` through the exec API and return its stdout (raises ProbeRunError).

    A fresh ApiClient per exec: kubernetes.stream swaps `call_api` on the client it is given,
    which is not safe across threads.
    """
    api = CountingApiClient(configuration)
    CountingApiClient.count_exec()
    # websocket-client has no connect timeout of its own; bound the handshake and every read.
    websocket.setdefaulttimeout(wait_s)
    command = [PROBE_BINARY, "dial", "--spec", json.dumps(spec, separators=(",", ":"))]
    try:
        resp = stream(
            k8s.CoreV1Api(api).connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=command,
            stdin=False,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=wait_s)
        if resp.is_open():
            resp.close()
            raise ProbeRunError(f"probe dial did not finish within {wait_s:.0f}s")
        stdout, stderr = resp.read_stdout(), resp.read_stderr()
        code = resp.returncode
    except ProbeRunError:
        raise
    except k8s.ApiException as exc:
        raise ProbeRunError(f"exec failed: {(exc.reason or str(exc)).splitlines()[0][:200]}") from None
    except (websocket.WebSocketException, OSError, ValueError, KeyError, TypeError) as exc:
        raise ProbeRunError(f"exec failed: {type(exc).__name__}: {str(exc)[:200]}") from None
    finally:
        api.close()
    if code != 0:
        tail = (stderr or stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise ProbeRunError(f"probe dial exited {code}: {tail[0][:200]}")
    return stdout


def dial_from(
    configuration: k8s.Configuration,
    namespace: str,
    source: Source,
    targets: list[Target],
    timeout_ms: int,
    run_exec: Any = None,
) -> SourceOutcome:
    """Dial every target from one client pod; a transport failure is retried once."""
    run_exec = run_exec or exec_probe  # looked up per call: tests replace the transport
    spec = build_spec(targets, timeout_ms)
    wait_s = worst_case_seconds(targets, timeout_ms) + 15.0
    started = time.monotonic()
    outcome = SourceOutcome(source=source)
    for attempt in (1, 2):
        outcome.tries = attempt
        try:
            stdout = run_exec(configuration, namespace, source.pod, spec, wait_s)
            outcome.results = parse_output(source, targets, stdout, timeout_ms)
            outcome.error = None
            break
        except ProbeRunError as exc:
            outcome.error = str(exc)
    outcome.seconds = round(time.monotonic() - started, 3)
    return outcome


MAX_PARALLEL_EXECS = 32


def dial_all(
    configuration: k8s.Configuration,
    namespace: str,
    plan: dict[Source, list[Target]],
    timeout_ms: int,
    run_exec: Any = None,
) -> list[SourceOutcome]:
    """All client pods concurrently; returns outcomes in the plan's (node-sorted) order.

    Daemon threads, not a ThreadPoolExecutor: on Ctrl-C/SIGTERM the main thread must get to the
    namespace cleanup now, not after every exec has waited out its timeout (executor threads are
    joined at exit).
    """
    outcomes: dict[int, SourceOutcome] = {}
    gate = threading.Semaphore(MAX_PARALLEL_EXECS)

    def one(index: int, source: Source, targets: list[Target]) -> None:
        with gate:
            outcomes[index] = dial_from(configuration, namespace, source, targets, timeout_ms, run_exec)

    threads = [
        threading.Thread(target=one, args=(i, source, targets), name=f"dial-{source.node}", daemon=True)
        for i, (source, targets) in enumerate(plan.items())
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # bounded: dial_from bounds each exec by the plan's worst case
    return [outcomes[i] for i in range(len(threads))]


# ---------------------------------------------------------------- dialing from the machine running pytest


def host_dial(ip: str, port: int, timeout_s: float) -> Attempt:
    """One fresh TCP connection + GET /whoami from this machine (NodePort from outside the cluster)."""
    started = time.monotonic()
    try:
        with socket.create_connection((ip, port), timeout=timeout_s) as sock:
            connected = time.monotonic()
            sock.settimeout(max(0.1, timeout_s - (connected - started)))
            sock.sendall(f"GET /whoami HTTP/1.0\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        body = b"".join(chunks).split(b"\r\n\r\n", 1)[-1]
        who = json.loads(body)
        return Attempt(
            ok=True,
            connect_ms=round((connected - started) * 1000, 3),
            total_ms=round((time.monotonic() - started) * 1000, 3),
            server_hostname=str(who.get("hostname", "")),
            server_node=str(who.get("node", "")),
            client_ip_seen=str(who.get("client_ip", "")),
        )
    except TimeoutError:
        return Attempt(ok=False, error="timeout", detail=f"no answer within {timeout_s:g}s")
    except ConnectionRefusedError as exc:
        return Attempt(ok=False, error="refused", detail=str(exc))
    except ConnectionResetError as exc:
        return Attempt(ok=False, error="reset", detail=str(exc))
    except OSError as exc:
        kind = "unreachable" if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else "other"
        return Attempt(ok=False, error=kind, detail=str(exc))
    except ValueError as exc:
        return Attempt(ok=False, error="other", detail=f"answer is not the probe's JSON: {exc}")


def local_address_towards(ip: str) -> str:
    """The source address this machine uses towards `ip` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((ip, 9))
            return sock.getsockname()[0]
        except OSError:
            return ""


KUBELET_PORT = 10250


def unreachable_reason(node_ip: str, timeout_s: float) -> str | None:
    """Why this machine cannot reach a node's IP at all (checked on the kubelet port), or None.

    A NodePort that fails while the kubelet port answers is a NodePort failure; one that fails while
    the node is unreachable says nothing about the cluster, so those checks skip.
    """
    if not node_ip:
        return "the node has no InternalIP"
    attempt = host_dial_connect_only(node_ip, KUBELET_PORT, timeout_s)
    if attempt is None:
        return None
    return f"this machine cannot reach node IP {node_ip} (kubelet port {KUBELET_PORT}: {attempt})"


def host_dial_connect_only(ip: str, port: int, timeout_s: float) -> str | None:
    try:
        with socket.create_connection((ip, port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no answer within {timeout_s:g}s"
    except OSError as exc:
        return exc.strerror or str(exc)


# ---------------------------------------------------------------- what every client dials

POD_TCP, POD_UDP = "pod:tcp:", "pod:udp:"
NODEPORT_CLUSTER, NODEPORT_LOCAL = "np-cluster:", "np-local:"
SERVICE_TCP, SERVICE_UDP = "svc:tcp", "svc:udp"
STABILITY_NODEPORT, STABILITY_CLUSTERIP = "stability:nodeport", "stability:clusterip"
# A many-attempt target stops after this many failures: a dead path then costs a few timeouts,
# not --stability-count of them, and the verdict is the same.
STOP_AFTER_FAILURES = 5
DNS_LABELS = {
    "short": "short name",
    "namespaced": "namespaced name",
    "fqdn": "FQDN",
    "headless": "headless Service",
    "kubernetes": "API Service",
}


def dns_names(namespace: str, domain: str) -> dict[str, str]:
    return {
        "short": "nc-server",
        "namespaced": f"nc-server.{namespace}",
        "fqdn": f"nc-server.{namespace}.svc.{domain}",
        "headless": f"nc-headless.{namespace}.svc.{domain}",
        "kubernetes": "kubernetes.default",
    }


def stability_peer(nodes: list[NodeInfo], src: NodeInfo) -> NodeInfo:
    """The next node by name (a ring): every node's NodePort is hammered by exactly one other node, cost O(N)."""
    names = [n.name for n in nodes]
    return nodes[(names.index(src.name) + 1) % len(nodes)]


def build_plan(dep: Deployment, nodes: list[NodeInfo], stability_count: int) -> dict[Source, list[Target]]:
    """Every target of every check, per client pod (one exec each). Deterministic: nodes in name order."""
    backend_tries = 6 * len(nodes)  # P(missing one of N backends) ~ N*e^-6 with uniform balancing
    plan: dict[Source, list[Target]] = {}
    for node in nodes:
        client = dep.clients[node.name]
        targets: list[Target] = []
        for dst in nodes:
            server = dep.servers[dst.name]
            targets += [
                Target(POD_TCP + dst.name, "tcp", server.ip, HTTP_PORT, "pod_to_pod", dst_node=dst.name),
                Target(POD_UDP + dst.name, "udp", server.ip, UDP_PORT, "pod_to_pod", dst_node=dst.name),
                Target(
                    NODEPORT_CLUSTER + dst.name,
                    "tcp",
                    dst.internal_ip,
                    dep.node_port,
                    "nodeport",
                    dst_node=dst.name,
                    dst_label=f"NodePort of {dst.name}",
                ),
                Target(
                    NODEPORT_LOCAL + dst.name,
                    "tcp",
                    dst.internal_ip,
                    dep.node_port_local,
                    "nodeport",
                    dst_node=dst.name,
                    dst_label=f"NodePort eTP=Local of {dst.name}",
                ),
            ]
        clusterip = "ClusterIP nc-server"
        peer = stability_peer(nodes, node)
        targets += [
            Target(
                SERVICE_TCP,
                "tcp",
                dep.cluster_ip,
                HTTP_PORT,
                "service",
                count=backend_tries,
                dst_label=clusterip,
                max_failures=STOP_AFTER_FAILURES,
            ),
            Target(
                SERVICE_UDP,
                "udp",
                dep.cluster_ip,
                UDP_PORT,
                "service",
                count=backend_tries,
                dst_label=clusterip,
                max_failures=STOP_AFTER_FAILURES,
            ),
            Target(
                STABILITY_NODEPORT,
                "tcp",
                peer.internal_ip,
                dep.node_port,
                "stability",
                count=stability_count,
                dst_node=peer.name,
                dst_label=f"NodePort of {peer.name}",
                max_failures=STOP_AFTER_FAILURES,
            ),
            Target(
                STABILITY_CLUSTERIP,
                "tcp",
                dep.cluster_ip,
                HTTP_PORT,
                "stability",
                count=stability_count,
                dst_label=clusterip,
                max_failures=STOP_AFTER_FAILURES,
            ),
        ]
        for kind, name in dns_names(dep.namespace, dep.cluster_domain).items():
            targets.append(Target(f"dns:{kind}", "dns", name, 0, "dns", dst_label=DNS_LABELS[kind]))
        plan[Source(client.name, client.ip, node.name)] = targets
    return plan


# ---------------------------------------------------------------- fixtures


@dataclass
class DialBook:
    """Every client pod's outcome, by node name, computed once per run."""

    outcomes: dict[str, SourceOutcome]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"outcomes": {n: o.to_dict() for n, o in self.outcomes.items()}, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DialBook:
        return cls({n: SourceOutcome.from_dict(o) for n, o in data["outcomes"].items()}, data["seconds"])


class SourceView:
    """A test's view of one client pod's results. Each result it hands out is recorded on the test
    report as the `netconform_path` user property, so diagnosis and reporting see the path."""

    def __init__(self, outcome: SourceOutcome, node: NodeInfo, item: pytest.Item) -> None:
        self.outcome, self.node, self._item = outcome, node, item
        self._by_id = {r.target_id: r for r in outcome.results}

    @property
    def pod(self) -> str:
        return self.outcome.source.pod

    @property
    def ip(self) -> str:
        return self.outcome.source.ip

    def result(self, target_id: str, check: str | None = None) -> DialResult:
        result = self._by_id[target_id]
        self._item.user_properties.append(("netconform_path", result.path_info(check)))
        return result

    def __repr__(self) -> str:
        return f"{self.pod} ({self.ip}, {self.node.name})"


def _dial_everything(
    configuration: k8s.Configuration, namespace: str, plan: dict[Source, list[Target]], timeout_ms: int
) -> dict[str, Any]:
    started = time.monotonic()
    outcomes = dial_all(configuration, namespace, plan, timeout_ms)
    return DialBook({o.source.node: o for o in outcomes}, round(time.monotonic() - started, 3)).to_dict()


@pytest.fixture(scope="session")
def dials(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    cluster: Cluster,
    probes: Deployment,
    tmp_path_factory: pytest.TempPathFactory,
) -> DialBook:
    """The one fan-out of the run: every client pod dials every target; tests assert on their slice."""
    timeout_ms = int(pytestconfig.getoption("dial_timeout") * 1000)
    plan = build_plan(probes, cluster.nodes, pytestconfig.getoption("stability_count"))
    # other workers wait for the first one's fan-out: at most two exec tries, each bounded by the worst case
    worst = max(worst_case_seconds(t, timeout_ms) for t in plan.values()) * 2 + 60
    data = once_per_run(
        shared_dir(tmp_path_factory, run_id(pytestconfig)),
        "dials",
        lambda: _dial_everything(cluster.configuration, probes.namespace, plan, timeout_ms),
        wait_s=worst,
        what="dialing from every client pod",
    )
    if "error" in data:
        fail_run(request, data["error"])
    return DialBook.from_dict(data)


def _check_of(request: pytest.FixtureRequest) -> str:
    return request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")


@pytest.fixture
def src(request: pytest.FixtureRequest, dials: DialBook, cluster: Cluster) -> SourceView:
    """The client pod on the node named by the indirect parameter, with its dial results.

    If the probe could not be run there, the test errors (not fails): that is no network verdict.
    """
    node = cluster.node(request.param)
    outcome = dials.outcomes.get(node.name)
    if outcome is None:
        pytest.fail(f"netconform: no client pod on {node.name}", pytrace=False)
    if outcome.error:
        request.node.user_properties.append(
            (
                "netconform_path",
                {
                    "check": _check_of(request),
                    "src_node": node.name,
                    "dst_node": None,
                    "target": None,
                    "error": "probe_not_run",
                    "seen_ip": None,
                },
            )
        )
        pytest.fail(
            f"could not run the probe in {outcome.source.pod} ({node.name}): {outcome.error} (tried {outcome.tries}x)",
            pytrace=False,
        )
    return SourceView(outcome, node, request.node)


@dataclass
class HostDials:
    """NodePort dials from the machine running pytest, per node; `skip` says why a node could not be tried."""

    hostname: str
    results: dict[str, list[DialResult]]
    skip: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "skip": self.skip,
            "results": {n: [r.to_dict() for r in rs] for n, rs in self.results.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostDials:
        return cls(
            data["hostname"],
            {n: [DialResult.from_dict(r) for r in rs] for n, rs in data["results"].items()},
            data["skip"],
        )


def dial_nodeports_from_host(dep: Deployment, nodes: list[NodeInfo], timeout_s: float) -> HostDials:
    hostname = socket.gethostname()
    timeout_ms = int(timeout_s * 1000)

    def one_node(node: NodeInfo) -> tuple[str, list[DialResult] | None, str | None]:
        reason = unreachable_reason(node.internal_ip, timeout_s)
        if reason:
            return node.name, None, reason
        source = Source(hostname, local_address_towards(node.internal_ip), "outside the cluster")
        results = []
        for target_id, port, label in (
            (NODEPORT_CLUSTER, dep.node_port, "NodePort"),
            (NODEPORT_LOCAL, dep.node_port_local, "NodePort eTP=Local"),
        ):
            attempt = host_dial(node.internal_ip, port, timeout_s)
            results.append(
                DialResult(
                    source.pod,
                    source.ip,
                    source.node,
                    target_id + node.name,
                    "nodeport",
                    "tcp",
                    node.internal_ip,
                    port,
                    node.name,
                    [attempt],
                    dest_label=f"{label} of {node.name}",
                    timeout_ms=timeout_ms,
                )
            )
        return node.name, results, None

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, max(1, len(nodes)))) as pool:
        done = list(pool.map(one_node, nodes))
    return HostDials(hostname, {n: r for n, r, _ in done if r is not None}, {n: why for n, _, why in done if why})


@pytest.fixture(scope="session")
def host_dials(
    pytestconfig: pytest.Config, cluster: Cluster, probes: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> HostDials:
    """NodePort of every node dialed from this machine (once per run, shared with xdist workers)."""
    timeout_s = pytestconfig.getoption("dial_timeout")
    data = once_per_run(
        shared_dir(tmp_path_factory, run_id(pytestconfig)),
        "host-dials",
        lambda: dial_nodeports_from_host(probes, cluster.nodes, timeout_s).to_dict(),
        wait_s=timeout_s * 3 * len(cluster.nodes) + 60,
        what="dialing NodePorts from this machine",
    )
    return HostDials.from_dict(data)


# ---------------------------------------------------------------- parametrization helpers for suites/


def inventory(metafunc: pytest.Metafunc) -> list[NodeInfo]:
    return selected_nodes(metafunc.config)


def parametrize_sources(metafunc: pytest.Metafunc) -> None:
    """`src` = the client pod on each node (indirect: the fixture fetches its results)."""
    nodes = inventory(metafunc)
    metafunc.parametrize("src", [n.name for n in nodes], ids=[f"from-{n.name}" for n in nodes], indirect=True)


def parametrize_pairs(metafunc: pytest.Metafunc, *, same_node: bool | None) -> None:
    """(`src`, `dst`): each node with itself (same_node=True), every ordered pair of distinct nodes
    (False), or both (None). With a single node there is no cross-node pair: one skipped case says so.
    """
    nodes = inventory(metafunc)
    pairs = [
        pytest.param(a.name, b, id=f"{a.name}-to-{b.name}")
        for a in nodes
        for b in nodes
        if same_node is None or (a == b) == same_node
    ]
    if same_node is False and len(nodes) == 1:
        only = nodes[0].name
        pairs = [
            pytest.param(
                only,
                nodes[0],
                id="cross-node",
                marks=pytest.mark.skip(reason=f"only one node selected ({only}): cross-node paths need two"),
            )
        ]
    metafunc.parametrize(("src", "dst"), pairs, indirect=["src"])


def parametrize_destinations(metafunc: pytest.Metafunc) -> None:
    """`dst` = each selected node (checks made from the machine running pytest)."""
    nodes = inventory(metafunc)
    metafunc.parametrize("dst", nodes, ids=[f"to-{n.name}" for n in nodes])


def connection_summary(result: DialResult) -> str:
    """Success ratio, backends and connect-time percentiles of a many-attempt target, in one line."""
    p50, p99 = result.connect_percentile(50), result.connect_percentile(99)
    timing = f"connect p50 {p50:.2f}ms p99 {p99:.2f}ms" if p50 is not None and p99 is not None else "no connection"
    ok = len(result.attempts) - len(result.failures)
    backends = ", ".join(result.backends) or "none"
    stopped = f" (stopped after {len(result.failures)} failures)" if len(result.failures) >= STOP_AFTER_FAILURES else ""
    text = (
        f"{result.path()}: {ok}/{len(result.attempts)} ok{stopped} ({result.success_ratio:.1%}), "
        f"backends {backends}, {timing}"
    )
    return text if result.ok else f"{text}; {result.what_went_wrong()}"
