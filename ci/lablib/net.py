"""The lab's wiring: a switch namespace, one namespace per node, one link from the root namespace.

The root namespace only gets nclab0 (the API server's address) and a blackhole for the
pod and service ranges, so that no lab packet can follow the machine's default route out.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

from . import config
from .config import Node
from .proc import LabError, run

BLACKHOLES = [config.POD_CIDR, config.SERVICE_CIDR]


def ns(netns: str, *argv: str, check: bool = True) -> str:
    return run(["ip", "netns", "exec", netns, *argv], check=check)


def netns_list() -> list[str]:
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def preflight() -> None:
    """Refuse to start where the lab's addresses would clash with the machine's own."""
    lab = ipaddress.ip_network(f"{config.LAB_NET}.0/24")
    for line in run(["ip", "-o", "-4", "addr", "show"]).splitlines():
        dev, cidr = line.split()[1], line.split()[3]
        if dev != config.ROOT_VETH and ipaddress.ip_interface(cidr).network.overlaps(lab):
            raise LabError(f"{dev} already uses {cidr}, which overlaps the lab network {lab}")
    for cidr in (config.POD_CIDR, config.SERVICE_CIDR):
        for line in run(["ip", "-4", "route", "show", "match", cidr.split("/")[0]]).splitlines():
            route = line.split()[0]
            if route != "default" and "blackhole" not in line and \
                    ipaddress.ip_network(route).overlaps(ipaddress.ip_network(cidr)):
                raise LabError(f"the machine already routes {route}, which overlaps the lab range {cidr}")


def up_switch() -> None:
    existing = netns_list()
    if config.SWITCH_NS not in existing:
        run(["ip", "netns", "add", config.SWITCH_NS])
    ns(config.SWITCH_NS, "ip", "link", "set", "lo", "up")
    if "br0" not in ns(config.SWITCH_NS, "ip", "-o", "link", "show"):
        ns(config.SWITCH_NS, "ip", "link", "add", "br0", "type", "bridge")
    # Frames between nodes are switched, never filtered by the switch's own iptables.
    for knob in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"):
        ns(config.SWITCH_NS, "sysctl", "-qw", f"net.bridge.{knob}=0")
    ns(config.SWITCH_NS, "ip", "link", "set", "br0", "up")
    if not Path(f"/sys/class/net/{config.ROOT_VETH}").exists():
        run(["ip", "link", "add", config.ROOT_VETH, "type", "veth", "peer", "name", "sw-root",
             "netns", config.SWITCH_NS])
    ns(config.SWITCH_NS, "ip", "link", "set", "sw-root", "master", "br0", "up")
    # The control plane's address; packets arriving here are never forwarded anywhere.
    run(["sysctl", "-qw", f"net.ipv4.conf.{config.ROOT_VETH}.forwarding=0"])
    run(["ip", "addr", "replace", f"{config.API_IP}/24", "dev", config.ROOT_VETH])
    run(["ip", "link", "set", config.ROOT_VETH, "up"])
    for cidr in BLACKHOLES:
        run(["ip", "route", "replace", "blackhole", cidr])


def up_node(node: Node) -> None:
    if node.netns not in netns_list():
        run(["ip", "netns", "add", node.netns])
    peer = f"sw-n{node.index}"
    if "eth0" not in ns(node.netns, "ip", "-o", "link", "show"):
        run(["ip", "link", "add", peer, "netns", config.SWITCH_NS, "type", "veth", "peer", "name", "eth0",
             "netns", node.netns])
    ns(config.SWITCH_NS, "ip", "link", "set", peer, "master", "br0", "up")
    ns(node.netns, "ip", "link", "set", "lo", "up")
    ns(node.netns, "ip", "addr", "replace", f"{node.ip}/24", "dev", "eth0")
    ns(node.netns, "ip", "link", "set", "eth0", "up")
    for knob in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1",
                 "net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1"):
        ns(node.netns, "sysctl", "-qw", knob)


def isolation_problems() -> list[str]:
    """What would let a lab packet leave the machine; empty when the lab is sealed."""
    problems = []
    for netns in [config.SWITCH_NS] + [n for n in netns_list() if n.startswith(f"{config.PREFIX}-node-")]:
        for line in ns(netns, "ip", "-4", "route", "show").splitlines():
            dest = line.split()[0]
            if dest == "default":
                problems.append(f"{netns} has a default route: {line}")
            elif not any(ipaddress.ip_network(dest, strict=False).subnet_of(ipaddress.ip_network(c))
                         for c in (f"{config.LAB_NET}.0/24", config.POD_CIDR, config.SERVICE_CIDR)):
                problems.append(f"{netns} routes {dest} outside the lab: {line}")
    if run(["sysctl", "-n", f"net.ipv4.conf.{config.ROOT_VETH}.forwarding"]).strip() != "0":
        problems.append(f"the root namespace forwards packets arriving on {config.ROOT_VETH}")
    for cidr in BLACKHOLES:
        if "blackhole" not in run(["ip", "route", "show", cidr]):
            problems.append(f"the root namespace has no blackhole route for {cidr}")
    return problems


def down() -> None:
    for netns in netns_list():
        if netns.startswith(f"{config.PREFIX}-"):
            run(["ip", "netns", "del", netns], check=False)
    if Path(f"/sys/class/net/{config.ROOT_VETH}").exists():
        run(["ip", "link", "del", config.ROOT_VETH], check=False)
    for cidr in BLACKHOLES:
        run(["ip", "route", "del", "blackhole", cidr], check=False)
