"""Waiting until kube-proxy has programmed the run's Services on every node, seen from the pods.

The EndpointSlices listing every probe pod is not enough: kube-proxy applies them asynchronously
(iptables mode: at most one sync per min-sync-period, 1 s by default), and a check dialing the moment
the slices are complete finds nodes still balancing over the old set. Instead of a fixed sleep, every
client pod dials every Service's ClusterIP (each family) until each has answered from all the
endpoints it must reach from there: all servers through nc-server and the two NodePort Services
(their ClusterIPs; the NodePort rules are written in the same kube-proxy sync from the same
endpoints), the single pod through its Service, and the pod itself through the hairpin Service
(internalTrafficPolicy Local). A Service that answered from them all is off the list; the rest are
dialed again, from fresh connections, until SETTLE_MAX_S.

Each client pod also dials its own node's InternalIP at the NodePorts (all servers through the
eTP=Cluster one; the Local ones until one pod answers, the single pod's only on its node). On flannel
the ClusterIPs alone would do, but where the CNI balances pod-to-ClusterIP traffic itself (Cilium's
BPF, with kube-proxy kept for the rest) a ClusterIP answering says nothing of kube-proxy's rules: a
NodePort dialed from outside was refused once on the Cilium lab, its node's kube-proxy not yet synced.

Above CONFIRM_BACKENDS_MAX servers, a client waits for that many distinct ones, not all: seeing every
one of N backends costs about N * H(N) connections per client and Service (7,500 at 1000 nodes; over
the cluster O(N^2)), and the bounded wait would end unconfirmed on a healthy big cluster. Twenty new
pods answering through a Service show its sync with this run's slices has happened; an endpoint
programmed later still gets its connections from the check, which dials until every backend answered.

This is a wait, not a check: nothing here passes or fails a test. The checks dial everything again
afterwards, exactly as they would have. When the bound is reached (kube-proxy down, hairpin mode off:
real faults), the run goes on, says which Services were not confirmed on which nodes, and the checks
find and explain the failure. The dials of this wait are counted (rounds, execs) and reported.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from kubernetes import client as k8s

from netconform.dialing.fanout import MAX_PARALLEL_EXECS, ProbeRunner, run_probe_dial
from netconform.dialing.probe import build_spec
from netconform.errors import NetconformError
from netconform.kube.inventory import NodeInfo
from netconform.workload.deploy import Deployment
from netconform.workload.labels import HAIRPIN_SERVICE, HTTP_PORT, SERVICES, SINGLE, UDP_PORT

__all__ = ["CONFIRM_BACKENDS_MAX", "SETTLE_MAX_S", "Settled", "Want", "settle_wants", "wait_programmed"]

# The bound of the whole wait. The fixed sleep it replaces was 3 s after the slices were complete;
# a healthy kube-proxy confirms well within it, a broken one costs this much before the checks run.
SETTLE_MAX_S = 6.0
# The distinct backends a client waits for through one Service (see above): all of them up to this.
CONFIRM_BACKENDS_MAX = 20
# One attempt to an unprogrammed ClusterIP is refused at once or silently dropped; do not wait long.
ATTEMPT_TIMEOUT_MS = 500
# Per round and Service: stop after this many failed connections (the next round tries again).
ROUND_MAX_FAILURES = 2
PAUSE_S = 0.2
EXEC_EXTRA_S = 10.0


@dataclass(frozen=True)
class Want:
    """One Service, as one client pod must see it: `backends` distinct pods answering on ip:port."""

    id: str
    label: str
    ip: str
    port: int
    proto: str
    backends: int

    def count(self) -> int:
        """Enough fresh connections that all backends answer with high odds (else the next round tries again)."""
        return max(8, 6 * self.backends)

    def spec(self) -> dict[str, object]:
        return {
            "id": self.id,
            "proto": self.proto,
            "host": self.ip,
            "port": self.port,
            "count": self.count(),
            "want_backends": self.backends,
            "max_failures": ROUND_MAX_FAILURES,
        }


@dataclass
class Settled:
    """What the wait found: seconds, rounds, execs, and per node what was never confirmed."""

    seconds: float = 0.0
    rounds: int = 0
    execs: int = 0
    unconfirmed: dict[str, list[str]] = field(default_factory=dict)  # node -> Service labels

    def note(self) -> str:
        """One line for the run's output: empty when every Service was confirmed on every node."""
        if not self.unconfirmed:
            return ""
        where = "; ".join(f"{node}: {', '.join(labels)}" for node, labels in sorted(self.unconfirmed.items()))
        return (
            f"not every Service answered from all its endpoints after {self.seconds:.1f}s ({self.rounds} rounds of "
            f"dials from the client pods: kube-proxy not synced yet, or a fault the checks will find), going on "
            f"with the checks; not answering from all endpoints: {where}"
        )


def _nodeport_wants(dep: Deployment, node: NodeInfo, family: str) -> list[Want]:
    """The NodePorts at `node`'s own InternalIP of `family`, as its client pod must see them."""
    ip = node.ip_of(family)
    if not ip:
        return []
    ports = [
        ("nodeport", dep.node_port, min(len(dep.servers), CONFIRM_BACKENDS_MAX)),
        ("nodeport-local", dep.node_port_local, 1),
    ]
    if dep.single and dep.single.node == node.name:
        ports.append(("nodeport-single", dep.node_port_single, 1))
    return [
        Want(f"{what}:tcp:{family}", f"NodePort {what} {ip}:{port}/tcp", ip, port, "tcp", backends)
        for what, port, backends in ports
        if port and backends
    ]


def settle_wants(
    dep: Deployment, families: list[str], nodes: dict[str, NodeInfo] | None = None
) -> dict[str, list[Want]]:
    """Client pod node -> the Services it must see fully programmed, per family (`nodes`: the NodePorts
    at each client's own node too)."""
    servers = len(dep.servers)
    wants: dict[str, list[Want]] = {}
    for node, client in dep.clients.items():
        mine: list[Want] = []
        for family in families:
            if not client.ip_of(family):
                continue  # the plan reports this pod's missing address; nothing to dial from it
            for name, ips in sorted(dep.service_ips.items()):
                ip = ips.get(family)
                if not ip:
                    continue
                if name == HAIRPIN_SERVICE:
                    backends = 1  # internalTrafficPolicy Local: this pod itself
                elif name == SINGLE["service"]:
                    backends = 1 if dep.single else 0
                elif name in SERVICES.values():
                    backends = min(servers, CONFIRM_BACKENDS_MAX)
                else:
                    backends = 0
                if not backends:
                    continue
                mine.append(
                    Want(f"{name}:tcp:{family}", f"{name} {ip}:{HTTP_PORT}/tcp", ip, HTTP_PORT, "tcp", backends)
                )
                if name == SERVICES["clusterip"]:
                    mine.append(
                        Want(f"{name}:udp:{family}", f"{name} {ip}:{UDP_PORT}/udp", ip, UDP_PORT, "udp", backends)
                    )
            if nodes and node in nodes:
                mine += _nodeport_wants(dep, nodes[node], family)
        wants[node] = mine
    return wants


def _confirmed(stdout: str) -> set[str]:
    """Ids of the targets that reached all their backends (`"stopped": "backends"`)."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return set()
    results = doc.get("results") if isinstance(doc, dict) else None
    return {str(r.get("id")) for r in results or [] if isinstance(r, dict) and r.get("stopped") == "backends"}


def _round(
    run: ProbeRunner,
    configuration: k8s.Configuration,
    dep: Deployment,
    node: str,
    wants: list[Want],
    found: dict[str, set[str]],
    gate: threading.Semaphore,
) -> None:
    """One `probe dial` in the client pod on `node` over the Services still pending there."""
    targets = [w.spec() for w in wants]
    spec = {**build_spec([], ATTEMPT_TIMEOUT_MS), "targets": targets}
    # every attempt answered quickly, or failing ones stopped at ROUND_MAX_FAILURES; plus the exec itself
    wait_s = ROUND_MAX_FAILURES * ATTEMPT_TIMEOUT_MS / 1000 + sum(w.count() for w in wants) * 0.05 + EXEC_EXTRA_S
    try:
        with gate:
            stdout = run(configuration, dep.namespace, dep.clients[node].name, json.dumps(spec), wait_s)
    except NetconformError:  # ExecError, ProbeRunError (a non-zero exit)
        stdout = ""  # an exec that failed confirms nothing; the fan-out reports exec failures itself
    found[node] = _confirmed(stdout)


def wait_programmed(
    configuration: k8s.Configuration,
    dep: Deployment,
    families: list[str],
    max_s: float = SETTLE_MAX_S,
    runner: ProbeRunner | None = None,
    nodes: dict[str, NodeInfo] | None = None,
) -> Settled:
    """Dial, from every client pod at once, the Services not yet confirmed there, until all are or
    `max_s` has passed (bounded: each round's execs are bounded, and no round starts after `max_s`)."""
    run = runner or run_probe_dial
    pending = {node: list(wants) for node, wants in settle_wants(dep, families, nodes).items() if wants}
    result = Settled()
    started = time.monotonic()
    gate = threading.Semaphore(MAX_PARALLEL_EXECS)
    while pending:
        result.rounds += 1
        found: dict[str, set[str]] = {}
        threads = [
            threading.Thread(target=_round, args=(run, configuration, dep, node, wants, found, gate), daemon=True)
            for node, wants in pending.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()  # bounded: each exec is (_round)
        result.execs += len(threads)
        pending = {
            node: left
            for node, wants in pending.items()
            if (left := [w for w in wants if w.id not in found.get(node, set())])
        }
        if not pending or time.monotonic() - started >= max_s:
            break
        time.sleep(PAUSE_S)
    result.seconds = round(time.monotonic() - started, 2)
    result.unconfirmed = {node: [w.label for w in wants] for node, wants in pending.items()}
    return result
