"""The lab's wiring: a switch namespace, one namespace per node, one link from the root namespace.

The root namespace only gets nclab0 (the API server's address, IPv6 disabled), a blackhole for the
pod and service ranges, so that no lab packet can follow the machine's default route out, and
(like a kubeadm control-plane node) more specific routes into the lab for each node's podCIDR and
for the ClusterIPs, via the nodes' lab addresses. nclab0 never forwards.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from . import config
from .config import Node
from .proc import LabError, run

BLACKHOLES = [config.POD_CIDR, config.SERVICE_CIDR]
BLACKHOLES6 = [config.POD_CIDR6, config.SERVICE_CIDR6]  # dual-stack variant only
# ClusterIPs from the control plane go to any node's kube-proxy: two halves of the service range, each
# spread over every node, so the /16 blackhole stays in place under them.
SERVICE_HALVES = [str(n) for n in ipaddress.ip_network(config.SERVICE_CIDR).subnets(1)]
LAB_RANGES = [config.LAB_CIDR, config.POD_CIDR, config.SERVICE_CIDR]
LAB_RANGES6 = [config.LAB_CIDR6, config.POD_CIDR6, config.SERVICE_CIDR6, "fe80::/64"]


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
    lab6 = [ipaddress.ip_network(c) for c in (config.LAB_CIDR6, config.POD_CIDR6, config.SERVICE_CIDR6)]
    for line in run(["ip", "-o", "-6", "addr", "show"]).splitlines():
        dev, cidr = line.split()[1], line.split()[3]
        if any(ipaddress.ip_interface(cidr).network.overlaps(r) for r in lab6):
            raise LabError(f"{dev} already uses {cidr}, which overlaps the lab's IPv6 ranges")
    for family, cidr in [
        ("-4", config.POD_CIDR),
        ("-4", config.SERVICE_CIDR),
        ("-6", config.POD_CIDR6),
        ("-6", config.SERVICE_CIDR6),
    ]:
        # -o: one line per route, so a multipath route's hops (via nclab0) are on its own line
        for line in run(["ip", "-o", family, "route", "show", "match", cidr.split("/")[0]]).splitlines():
            words = line.split()
            if words[0] in ("default", "blackhole") or config.ROOT_VETH in words:
                continue  # the default route, or a lab's own route (swept by `down` before `up`)
            if ipaddress.ip_network(words[0]).overlaps(ipaddress.ip_network(cidr)):
                raise LabError(f"the machine already routes {words[0]}, which overlaps the lab range {cidr}")


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
        run(
            [
                "ip",
                "link",
                "add",
                config.ROOT_VETH,
                "type",
                "veth",
                "peer",
                "name",
                "sw-root",
                "netns",
                config.SWITCH_NS,
            ]
        )
    ns(config.SWITCH_NS, "ip", "link", "set", "sw-root", "master", "br0", "up")
    # The control plane's address; packets arriving here are never forwarded anywhere. IPv6 is off on
    # nclab0 (the kernel drops every IPv6 packet arriving there): IPv6 forwarding is machine-wide, not
    # per interface, so this is what keeps the dual-stack lab's IPv6 inside.
    run(["sysctl", "-qw", f"net.ipv4.conf.{config.ROOT_VETH}.forwarding=0"])
    run(["sysctl", "-qw", f"net.ipv6.conf.{config.ROOT_VETH}.disable_ipv6=1"])
    run(["ip", "addr", "replace", f"{config.API_IP}/24", "dev", config.ROOT_VETH])
    run(["ip", "link", "set", config.ROOT_VETH, "up"])
    for cidr in BLACKHOLES:
        run(["ip", "route", "replace", "blackhole", cidr])
    if config.variant().dual:
        for cidr in BLACKHOLES6:
            run(["ip", "-6", "route", "replace", "blackhole", cidr])


def route_control_plane(pod_cidrs: dict[Node, str]) -> None:
    """Make the root namespace a control-plane node of the pod network: each node's podCIDR via that
    node's lab address, ClusterIPs via any node (ECMP). Replies come back on nclab0; nothing is forwarded."""
    for n, cidr in pod_cidrs.items():
        run(["ip", "route", "replace", cidr, "via", n.ip, "dev", config.ROOT_VETH])
    hops = [arg for n in pod_cidrs for arg in ("nexthop", "via", n.ip, "dev", config.ROOT_VETH)]
    for half in SERVICE_HALVES:
        run(["ip", "route", "replace", half, *hops])


def up_node(node: Node) -> None:
    if node.netns not in netns_list():
        run(["ip", "netns", "add", node.netns])
    peer = f"sw-n{node.index}"
    if "eth0" not in ns(node.netns, "ip", "-o", "link", "show"):
        run(
            [
                "ip",
                "link",
                "add",
                peer,
                "netns",
                config.SWITCH_NS,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                node.netns,
            ]
        )
    ns(config.SWITCH_NS, "ip", "link", "set", peer, "master", "br0", "up")
    ns(node.netns, "ip", "link", "set", "lo", "up")
    ns(node.netns, "ip", "addr", "replace", f"{node.ip}/24", "dev", "eth0")
    knobs = [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.route_localnet=1",
        "net.bridge.bridge-nf-call-iptables=1",
        "net.bridge.bridge-nf-call-ip6tables=1",
    ]
    if config.variant().dual:
        # no duplicate address detection: the lab assigns every address once, and DAD would delay
        # flanneld's and the pods' IPv6 addresses by seconds
        knobs += [
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.eth0.accept_dad=0",
        ]
        ns(node.netns, "ip", "-6", "addr", "replace", f"{node.ip6}/64", "dev", "eth0", "nodad")
    ns(node.netns, "ip", "link", "set", "eth0", "up")
    for knob in knobs:
        ns(node.netns, "sysctl", "-qw", knob)


def _outside(dest: str, ranges: list[str]) -> bool:
    net = ipaddress.ip_network(dest, strict=False)
    return not any(_within(net, ipaddress.ip_network(c)) for c in ranges)


def _within(
    net: ipaddress.IPv4Network | ipaddress.IPv6Network, outer: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    """net lies in outer (False across families; subnet_of wants both of one family)."""
    if isinstance(net, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return net.subnet_of(outer)
    if isinstance(net, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return net.subnet_of(outer)
    return False


def isolation_problems() -> list[str]:
    """What would let a lab packet leave the machine; empty when the lab is sealed."""
    problems = []
    for netns in [config.SWITCH_NS] + [n for n in netns_list() if n.startswith(f"{config.PREFIX}-node-")]:
        for family, ranges in (("-4", LAB_RANGES), ("-6", LAB_RANGES6)):
            for line in ns(netns, "ip", family, "route", "show").splitlines():
                dest = line.split()[0]
                if dest == "default":
                    problems.append(f"{netns} has a default route: {line}")
                elif dest not in ("blackhole", "unreachable", "prohibit") and _outside(dest, ranges):
                    problems.append(f"{netns} routes {dest} outside the lab: {line}")
    if run(["sysctl", "-n", f"net.ipv4.conf.{config.ROOT_VETH}.forwarding"]).strip() != "0":
        problems.append(f"the root namespace forwards packets arriving on {config.ROOT_VETH}")
    if config.variant().dual and run(["sysctl", "-n", f"net.ipv6.conf.{config.ROOT_VETH}.disable_ipv6"]).strip() != "1":
        problems.append(f"IPv6 is enabled on {config.ROOT_VETH} (IPv6 forwarding is machine-wide)")
    # The control plane's routes into the lab (one line per route, multipath hops included) stay in it.
    for line in run(["ip", "-4", "-o", "route", "show"]).splitlines():
        if config.ROOT_VETH in line.split() and line.split()[0] != "default" and _outside(line.split()[0], LAB_RANGES):
            problems.append(f"the root namespace routes {line.split()[0]} into the lab: {line.strip()}")
        elif config.ROOT_VETH in line.split() and line.split()[0] == "default":
            problems.append(f"the root namespace's default route goes into the lab: {line.strip()}")
    blackholes = [("-4", c) for c in BLACKHOLES] + ([("-6", c) for c in BLACKHOLES6] if config.variant().dual else [])
    for family, cidr in blackholes:
        if "blackhole" not in run(["ip", family, "route", "show", cidr]):
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
    for cidr in BLACKHOLES6:
        run(["ip", "-6", "route", "del", "blackhole", cidr], check=False)
