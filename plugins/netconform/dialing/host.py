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
from netconform.dialing.plan import nodeport_target
from netconform.kube.inventory import NodeInfo
from netconform.workload.deploy import Deployment

__all__ = ["HostDials", "dial_nodeports_from_host", "host_dial", "unreachable_reason"]


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
            (nodeport_target(node.name), dep.node_port, "NodePort"),
            (nodeport_target(node.name, local=True), dep.node_port_local, "NodePort eTP=Local"),
        ):
            attempt = host_dial(node.internal_ip, port, timeout_s)
            results.append(
                DialResult(
                    source.pod,
                    source.ip,
                    source.node,
                    target_id,
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
