"""--capture-pcap's BPF filters and snap lengths: the failed path's own TCP flows, headers only.

A capture point sees the probe's flows as `Flow`s: one of our probe pods' addresses talking to one of a
few peers on one port. On an Ethernet-like interface (the pod's host-side veth, flannel.1) the packets
are the pods' own, so the usual `host`/`port` primitives match them. On the underlay a pod's packet is
the payload of a VXLAN datagram: libpcap here (1.10) has no `vxlan` keyword, and its `udp[...]` index
works on IPv4 only, so the inner headers are matched by byte offset from the outer UDP header (IPv4
underlay) or from the outer IPv6 header (`ip6[...]`, no extension headers, as the kernel's VXLAN sends
them). What offsets cannot match: an inner 802.1Q tag or IPv6 extension headers (flannel sends
neither), and the inner TCP ports behind IPv4 options are found through the inner IHL. Every value is
validated here before it becomes filter text (it reaches tcpdump's command line).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["VXLAN_PORT", "Flow", "any_filter", "link_filter", "snap_length"]

VXLAN_PORT = 8472  # flannel's, not IANA's 4789

# Headers only: the link header, the IP header without options (pods send none: an IPv4 header with
# options leaves its TCP options cut short, never more bytes) and the longest TCP header (60 bytes: the
# options carry the timestamps the PAWS verdict reads). A segment with a shorter TCP header leaves at
# most 40 bytes of the probe's own request in the capture, never another workload's.
TCP_MAX = 60
IP_HEADER = {4: 20, 6: 40}
ETHERNET, LINUX_SLL2, UDP_VXLAN = 14, 20, 16  # -i any writes LINUX_SLL2 headers (tcpdump 4.99)


def snap_length(family: int, *, vxlan: bool) -> int:
    """Bytes kept per packet: 94/114 on an Ethernet link, 150/190 for -i any with the VXLAN headers."""
    if family not in IP_HEADER:
        raise ValueError(f"not an IP family: {family!r}")
    inner = IP_HEADER[family] + TCP_MAX
    if not vxlan:
        return ETHERNET + inner
    return LINUX_SLL2 + IP_HEADER[family] + UDP_VXLAN + ETHERNET + inner


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IP address: {text[:60]!r}") from None


@dataclass(frozen=True)
class Flow:
    """Our probe pod `pod` talking TCP on `port` with any of `peers` (all of one family, checked)."""

    pod: str
    peers: tuple[str, ...]
    port: int

    def __post_init__(self) -> None:
        pod = _address(self.pod)
        peers = tuple(_address(p) for p in self.peers)
        if not peers or len(peers) > 16:
            raise ValueError(f"a flow needs 1..16 peers, not {len(peers)}")
        if any(p.version != pod.version for p in peers):
            raise ValueError(f"peers of {pod} are not all IPv{pod.version}")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 < self.port < 65536:
            raise ValueError(f"not a TCP port: {self.port!r}")
        # canonical spellings only: what reaches the filter is what ipaddress printed
        object.__setattr__(self, "pod", str(pod))
        object.__setattr__(self, "peers", tuple(dict.fromkeys(str(p) for p in peers)))

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.pod).version


def _one_family(flows: list[Flow]) -> int:
    families = {f.family for f in flows}
    if len(families) != 1:
        raise ValueError("a capture's flows must be of one IP family")
    return families.pop()


def link_filter(flows: list[Flow]) -> str:
    """The flows as the pods' own packets (a veth, flannel.1, cni0): `tcp and host A and (host B ...) and port N`."""
    _one_family(flows)
    return " or ".join(
        f"(tcp and host {f.pod} and ({' or '.join(f'host {p}' for p in f.peers)}) and port {f.port})" for f in flows
    )


def _words(addr: str, base: int, load: str) -> list[str]:
    """`load[base:4] = 0x...` comparisons, one per 32-bit word of the address."""
    packed = ipaddress.ip_address(addr).packed
    return [f"{load}[{base + i}:4] = 0x{packed[i : i + 4].hex()}" for i in range(0, len(packed), 4)]


def _inner_pair(a: str, b: str, src: int, dst: int, load: str) -> str:
    """Inner source a and destination b, or the reverse (the answer)."""
    there = " and ".join(_words(a, src, load) + _words(b, dst, load))
    back = " and ".join(_words(b, src, load) + _words(a, dst, load))
    return f"(({there}) or ({back}))"


def _vxlan_filter(flows: list[Flow]) -> str:
    """The flows inside flannel's VXLAN datagrams, matched by offset (see the module docstring)."""
    family = _one_family(flows)
    if family == 4:
        # from the UDP header: 8 UDP + 8 VXLAN + 14 inner Ethernet; inner IPv4 at 30, TCP after its IHL
        load, ip, outer = "udp", 30, f"ip and udp dst port {VXLAN_PORT}"
        ether, proto, src, dst = "udp[28:2] = 0x0800", f"udp[{ip + 9}] = 6", ip + 12, ip + 16
        tcp = f"{ip} + ((udp[{ip}] & 0xf) << 2)"
    else:
        # from the outer IPv6 header (40 bytes, then UDP): inner IPv6 at 70, TCP right after its 40 bytes
        load, ip, outer = "ip6", 70, f"ip6 and ip6[6] = 17 and ip6[42:2] = {VXLAN_PORT}"
        ether, proto, src, dst = "ip6[68:2] = 0x86dd", f"ip6[{ip + 6}] = 6", ip + 8, ip + 24
        tcp = str(ip + 40)
    parts = []
    for f in flows:
        pairs = " or ".join(_inner_pair(f.pod, p, src, dst, load) for p in f.peers)
        port = f"({load}[{tcp}:2] = {f.port} or {load}[{tcp} + 2:2] = {f.port})"
        parts.append(f"(({pairs}) and {port})")
    return f"({outer} and {ether} and {proto} and ({' or '.join(parts)}))"


def any_filter(flows: list[Flow]) -> str:
    """For `-i any`: the flows where they cross the node unencapsulated, or inside flannel's VXLAN."""
    return f"({link_filter(flows)}) or {_vxlan_filter(flows)}"
