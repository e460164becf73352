"""Where a pod's packets enter its node: the pod's host-side interface, whatever the CNI.

Seed 2's procedure: `ip route get <pod IP>` on the pod's node names the pod's own interface on a routed
CNI (Calico's `cali*`: a /32 route per pod) and the capture runs there. Where the route names a shared
device instead (flannel's bridge cni0, Cilium's cilium_host), the pod's eth0 tells its veth peer:
/sys/class/net/eth0/iflink, read in our own probe pod, is the ifindex of the host side, named by
`ip -o link show` on the node. "The pod's own interface" is judged the same way for both: a link whose
peer lives in another network namespace (`name@ifN`, or `link-netns` / `link-netnsid` on its line), which a bridge or
cilium_host never is, on a route with no gateway (a default route out of a node whose own uplink is a
veth, as a kind node's eth0, is not the pod's interface). Every answer is parsed bounded and every name validated before it reaches tcpdump.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "HostSide",
    "IfaceNotFound",
    "LinkLine",
    "find_host_side",
    "parse_iflink",
    "parse_links",
    "route_dev",
    "route_is_direct",
]

# Linux IFNAMSIZ is 16 with the NUL: 15 characters; no '/', whitespace, or a leading '-' (an option)
IFNAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}")
MAX_LINES = 4096  # `ip -o link show` of a node: far more is not a node's link table
MAX_CHARS = 1 << 20
MAX_IFINDEX = (1 << 31) - 1
_LINK = re.compile(r"(\d{1,10}): ([^\s:@]{1,15})(?:@(\S{1,20}))?: <([A-Z0-9_,-]{0,200})>")


class IfaceNotFound(Exception):
    """The pod's host-side interface could not be found; the message says why, in one sentence."""


def valid_ifname(name: str) -> bool:
    return bool(IFNAME.fullmatch(name))


def _lines(text: str) -> list[str]:
    return text[:MAX_CHARS].splitlines()[:MAX_LINES]


def route_dev(text: str) -> str | None:
    """The `dev` of `ip -o route get <IP>`'s answer (its first line), if one valid name is given."""
    words = _first_words(text)
    for i, word in enumerate(words[:-1]):
        if word == "dev":
            return words[i + 1] if valid_ifname(words[i + 1]) else None
    return None


def route_is_direct(text: str) -> bool:
    """The answer names no gateway (`via`): the pod is on the link itself, as on its own cali* device. A
    route via a gateway (a default route out of a kind node's veth eth0) never names the pod's interface."""
    words = _first_words(text)
    return bool(words) and "via" not in words


def _first_words(text: str) -> list[str]:
    return next((line for line in _lines(text) if line.strip()), "").split()[:64]


@dataclass(frozen=True)
class LinkLine:
    """One line of `ip -o link show`: `7: veth1a2b3c4d@if2: <...> ... link-netns cni-...`."""

    index: int
    name: str
    peer_elsewhere: bool  # its peer is in another network namespace: a pod's interface
    kind_hint: str  # what follows '@' ("if2", "cilium_net") or ""


def parse_links(text: str) -> dict[int, LinkLine]:
    """`ip -o link show` by ifindex; lines that are not a link (or not a valid name) are skipped."""
    links: dict[int, LinkLine] = {}
    for line in _lines(text):
        m = _LINK.match(line)
        if not m or not valid_ifname(m.group(2)):
            continue
        index = int(m.group(1))
        if not 0 < index <= MAX_IFINDEX:
            continue
        words = line.split()
        # iproute2 writes `name@ifN` when the peer is in another namespace (`name@peer` in the same one); the
        # lab's agent printed `veth547bdb17@if2` without link-netnsid on its -o line (2026-12-03): either says it
        peer = m.group(3) or ""
        elsewhere = "link-netns" in words or "link-netnsid" in words or bool(re.fullmatch(r"if\d{1,10}", peer))
        links[index] = LinkLine(index, m.group(2), elsewhere, peer)
    return links


def parse_iflink(text: str) -> int | None:
    """The one decimal ifindex /sys/class/net/eth0/iflink holds, or None."""
    word = text[:64].strip()
    if not word.isdecimal() or len(word) > 10:
        return None
    index = int(word)
    return index if 0 < index <= MAX_IFINDEX else None


@dataclass(frozen=True)
class HostSide:
    """The pod's host-side interface and how it was found (the evidence line says both)."""

    name: str
    how: str


def find_host_side(
    pod_ip: str,
    run_node: Callable[[str], str],
    read_iflink: Callable[[], str],
) -> HostSide:
    """Route first, the veth peer of the pod's eth0 second. run_node(command) is the node's answer
    (stdout); read_iflink() reads /sys/class/net/eth0/iflink in the pod. IfaceNotFound says why not."""
    ip = str(ipaddress.ip_address(pod_ip))  # canonical: the only spelling that reaches the command
    links = parse_links(run_node("ip -o link show"))
    route = run_node(f"ip -o route get {ip}")
    dev = route_dev(route)
    by_name = {link.name: link for link in links.values()}
    if dev and dev in by_name and by_name[dev].peer_elsewhere and route_is_direct(route):
        return HostSide(dev, f"`ip route get {ip}` names it, and its peer is in another network namespace")
    said = f"the route names {dev}" if dev else "the route names no device"
    if dev and dev in by_name and not route_is_direct(route):
        said += " through a gateway"
    elif dev and dev in by_name:
        said += ", whose peer is not in a pod's network namespace (a bridge or the CNI's own device)"
    index = parse_iflink(read_iflink())
    if index is None:
        raise IfaceNotFound(f"{said}, and the pod's /sys/class/net/eth0/iflink gave no ifindex")
    peer = links.get(index)
    if peer is None:
        raise IfaceNotFound(f"{said}, and no link on the node has ifindex {index} (the pod's eth0 peer)")
    # The pod's own eth0 names this ifindex as its peer; a link with a peer at all (`name@...`) is then the
    # pod's veth. busybox's `ip -o link` (the lab's agent) prints the peer's ifindex resolved against the
    # node's own links (`veth7923c1ba@eth0`) and no link-netnsid, so peer_elsewhere cannot be asked here.
    if not (peer.peer_elsewhere or peer.kind_hint):
        raise IfaceNotFound(f"{said}, and ifindex {index} ({peer.name}) is not a veth into a pod")
    return HostSide(peer.name, f"the veth peer of the pod's eth0 (iflink {index}); {said}")
