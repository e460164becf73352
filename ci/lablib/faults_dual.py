"""Faults of the dual-stack lab's IPv6 overlay (flannel-v6.1), as their IPv4 twins in faults.py break flannel.1."""

from __future__ import annotations

import ipaddress
import json

from . import control
from .cluster import bin_dir, run_in_node
from .config import Node
from .proc import LabError
from .undo import Command, UndoStep

V6_BACKEND_DATA = "flannel.alpha.coreos.com/backend-v6-data"


def _peers6(node: Node) -> list[tuple[str, str]]:
    """(IPv6 subnet address, flannel-v6.1 VtepMAC) of every other node: what its flannel-v6.1 neighbour holds."""
    found = []
    for item in json.loads(control.kubectl(bin_dir(), "get", "nodes", "-o", "json"))["items"]:
        if item["metadata"]["name"] == node.name:
            continue
        vtep = json.loads(item["metadata"].get("annotations", {}).get(V6_BACKEND_DATA, "{}")).get("VtepMAC")
        cidrs = [c for c in item["spec"].get("podCIDRs", []) if ":" in c]
        if vtep and cidrs:
            found.append((str(ipaddress.ip_network(cidrs[0]).network_address), vtep))
    if not found:
        raise LabError(f"{node.name} has no IPv6 flannel peers (a dual-stack lab: ci/lab up --ip-family dual)")
    return found


def stale_neighbour6(node: Node, stale_mac: str) -> list[UndoStep]:
    undo: list[UndoStep] = []
    for subnet0, vtep in _peers6(node):
        run_in_node(
            node,
            ["ip", "-6", "neigh", "replace", subnet0, "lladdr", stale_mac, "dev", "flannel-v6.1", "nud", "permanent"],
        )
        undo.append(
            Command(
                ("ip", "-6", "neigh", "replace", subnet0, "lladdr", vtep, "dev", "flannel-v6.1", "nud", "permanent")
            )
        )
    return undo
