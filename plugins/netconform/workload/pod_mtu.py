"""The pod MTU a full-size datagram must fit: the kernel's route MTU toward the peers, read in one client pod."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from kubernetes import client as k8s

from netconform.errors import NetconformError
from netconform.kube.exec import run_in_pod
from netconform.workload.labels import PROBE_BINARY, PROBE_CONTAINER

__all__ = ["MTU_EXEC_TIMEOUT_S", "mtu_command", "parse_route_mtus", "read_pod_mtu"]

MTU_EXEC_TIMEOUT_S = 15.0


def mtu_command(destinations: Iterable[str]) -> list[str]:
    """`probe route-mtu` toward each destination; ValueError for anything that is not an IP address."""
    ips = [str(ipaddress.ip_address(d)) for d in destinations]
    if not ips:
        raise ValueError("no destination to read the route MTU toward")
    return [PROBE_BINARY, "route-mtu", *ips]


def parse_route_mtus(stdout: str, asked: list[str]) -> int:
    """The smallest MTU of `probe route-mtu`'s "<ip> <mtu>" lines, one per address asked; ValueError unless
    every address has one plausible number (68..65536)."""
    got: dict[str, int] = {}
    for line in stdout.splitlines():
        ip, _, mtu = line.strip().partition(" ")
        if ip:
            got[str(ipaddress.ip_address(ip))] = int(mtu)
    missing = [ip for ip in asked if ip not in got]
    if missing:
        raise ValueError(f"no route MTU printed for {', '.join(missing)}")
    low = min(got[ip] for ip in asked)
    if not 68 <= low <= 65536:
        raise ValueError(f"MTU {low} is out of range")
    return low


def read_pod_mtu(api: k8s.ApiClient, namespace: str, pod: str, destinations: list[str]) -> tuple[int, str]:
    """The route MTU in `pod` toward `destinations` (the smallest): (mtu, "") or (0, why not). One exec per run.

    The route's, not eth0's: the kernel sends by the route, and a CNI may set the route's MTU below the
    device's (Cilium: eth0 1500, default route mtu 1450); without an MTU on the route it is the device's.
    One pod stands for all: pods get their MTU from the cluster's CNI config. A node whose pods have a
    smaller MTU fails the checks anyway (its own sends are too big for its route; sends to it are dropped
    at its veth); a node whose pods have a larger one is only seen if it is the one read. The pod is new
    (its own netns), so no path MTU learned from an earlier run's ICMP can lower what is read."""
    try:
        command = mtu_command(destinations)
        asked = command[2:]
        done = run_in_pod(
            api.configuration, namespace, pod, command, container=PROBE_CONTAINER, timeout_s=MTU_EXEC_TIMEOUT_S
        )
        if done.rc != 0:
            return 0, f"`{' '.join(command)}` in {pod} exited {done.rc}: {done.stderr.strip()[:200] or 'no output'}"
        return parse_route_mtus(done.stdout, asked), ""
    except (NetconformError, ValueError) as exc:
        return 0, f"could not read the pod MTU in {pod}: {exc}"
