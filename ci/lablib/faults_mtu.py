"""MTU faults by mechanism (docs/faults.md #5): what is short decides the cause and the fix.

- the overlay device below the pods (flannel.1 lowered): `mtu-mismatch`;
- the node's uplink below what the overlay device needs (eth0 lowered, flannel.1 left): `mtu-uplink-too-small`;
- the network between the nodes below both ends (the node's port on the lab switch lowered, every node's
  eth0 left at 1500), or the node's route to its peers given a smaller mtu: `mtu-path-too-small`. The
  switch is a bridge: it drops a frame above a port's MTU without an ICMP error, as an L2 segment with a
  smaller MTU does."""

from __future__ import annotations

from . import config
from .cluster import run_in_node
from .config import Node
from .proc import LabError, run
from .undo import Command, SwitchCommand, UndoStep

UPLINK_MTU = 1400  # below flannel.1's 1450 + 50 of VXLAN: full-size pod packets no longer fit


def _set_mtu(node: Node, dev: str, mtu: int) -> list[UndoStep]:
    old = run_in_node(node, ["cat", f"/sys/class/net/{dev}/mtu"]).strip()
    run_in_node(node, ["ip", "link", "set", dev, "mtu", str(mtu)])
    return [Command(("ip", "link", "set", dev, "mtu", old))]


def overlay_below_pods(node: Node) -> list[UndoStep]:
    return _set_mtu(node, "flannel.1", 1000)


def uplink_below_overlay(node: Node) -> list[UndoStep]:
    return _set_mtu(node, "eth0", UPLINK_MTU)


def switch_port(node: Node) -> str:
    """The node's port on the lab switch: the veth peer of its eth0 in nclab-sw (net.up_node)."""
    return f"sw-n{node.index}"


def path_below_both(node: Node) -> list[UndoStep]:
    port = switch_port(node)
    sw = ["ip", "netns", "exec", config.SWITCH_NS]
    old = run([*sw, "cat", f"/sys/class/net/{port}/mtu"]).strip()
    run([*sw, "ip", "link", "set", port, "mtu", str(UPLINK_MTU)])
    return [SwitchCommand(("ip", "link", "set", port, "mtu", old))]


def route_below_uplink(node: Node) -> list[UndoStep]:
    """The node's route to the lab subnet (its peers) given `mtu 1400`, its eth0 left at 1500: VXLAN refuses
    the full-size encapsulated packets on the way out (an ICMP fragmentation-needed to the pod)."""
    line = run_in_node(node, ["ip", "route", "show", f"{config.LAB_NET}.0/24", "dev", "eth0"]).strip().splitlines()
    if not line:
        raise LabError(f"{node.name} has no route to {config.LAB_NET}.0/24 on eth0")
    spec = [f"{config.LAB_NET}.0/24", "dev", "eth0", *line[0].split()[1:]]
    run_in_node(node, ["ip", "route", "replace", *spec, "mtu", str(UPLINK_MTU)])
    return [Command(("ip", "route", "replace", *spec))]
