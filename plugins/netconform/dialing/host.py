"""Dials from the machine running pytest: every node's NodePort from outside the cluster.

A NodePort that fails while the node's kubelet port answers is a NodePort failure; one that fails
while the node is unreachable from here says nothing about the cluster, so those checks skip.
"""

from __future__ import annotations

import concurrent.futures
import errno
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from netconform.dialing.model import Attempt, DialResult, Source
from netconform.dialing.plan import nodeport_target, single_nodeport_target
from netconform.kube.inventory import NodeInfo, cluster_families
from netconform.workload.deploy import Deployment
from netconform.workload.labels import SINGLE

__all__ = ["HostDials", "dial_nodeports_from_host", "host_dial", "unreachable_reason"]


def host_dial(ip: str, port: int, timeout_s: float) -> Attempt:
    """One fresh TCP connection + GET /whoami from this machine (NodePort from outside the cluster)."""
    started = time.monotonic()
    try:
        with socket.create_connection((ip, port), timeout=timeout_s) as sock:
            connected = time.monotonic()
            sock.settimeout(max(0.1, timeout_s - (connected - started)))
            host = f"[{ip}]" if ":" in ip else ip
            sock.sendall(f"GET /whoami HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
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
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM) as sock:
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


@dataclass
class HostDials:
    """NodePort dials from the machine running pytest, per node (every family); `skip` says, per target
    id, why it could not be tried (this machine cannot reach the node's address of that family)."""

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
    """Every node's NodePorts (eTP Cluster, eTP Local, and the single-backend eTP=Local one) over every
    IP family, from this machine; concurrently per node and family."""
    hostname = socket.gethostname()
    timeout_ms = int(timeout_s * 1000)
    single_on = dep.single.node if dep.single else "no node"

    def one(node: NodeInfo, family: str) -> tuple[str, list[DialResult], dict[str, str]]:
        ports = [
            (nodeport_target(node.name, family=family), dep.node_port, f"NodePort of {node.name}"),
            (
                nodeport_target(node.name, local=True, family=family),
                dep.node_port_local,
                f"NodePort eTP=Local of {node.name}",
            ),
        ]
        if dep.node_port_single:
            ports.append(
                (
                    single_nodeport_target(node.name, family),
                    dep.node_port_single,
                    f"NodePort eTP=Local of {SINGLE['service']} on {node.name}, its only backend on {single_on}",
                )
            )
        ip = node.ip_of(family)
        reason = unreachable_reason(ip, timeout_s) if ip else f"{node.name} has no {family} InternalIP"
        if reason:
            return node.name, [], {target_id: reason for target_id, _, _ in ports}
        assert ip is not None
        source = Source(hostname, local_address_towards(ip), "outside the cluster")
        results = []
        for target_id, port, label in ports:
            attempt = host_dial(ip, port, timeout_s)
            results.append(
                DialResult(
                    source.pod,
                    source.ip,
                    source.node,
                    target_id,
                    "nodeport",
                    "tcp",
                    ip,
                    port,
                    node.name,
                    [attempt],
                    dest_label=label,
                    timeout_ms=timeout_ms,
                )
            )
        return node.name, results, {}

    jobs = [(n, f) for f in cluster_families(nodes) for n in nodes]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, max(1, len(jobs)))) as pool:
        done = list(pool.map(lambda job: one(*job), jobs))
    results: dict[str, list[DialResult]] = {n.name: [] for n in nodes}
    skip: dict[str, str] = {}
    for name, found, why in done:
        results[name] += found
        skip.update(why)
    return HostDials(hostname, results, skip)
