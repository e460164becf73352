"""--capture-pcap's analysis: a pcap's bytes in, what its TCP handshakes and VXLAN frames show out.

The functions are pure and tested on real captures made in network namespaces
(tests/data/recorded/pcap/); the capture itself (where, which flows) is capture_live's.
"""

from __future__ import annotations

import io
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from netconform.errors import missing_extra

from .capture_filter import VXLAN_PORT

__all__ = ["Analysis", "analyse", "verdict"]

MAX_PACKETS = 200_000  # headers of the probe's own flows for --capture-seconds at most: far more is not ours


@dataclass
class Analysis:
    packets: int = 0
    syns: int = 0
    handshakes: int = 0  # SYNs answered by a SYN-ACK
    unanswered: list[str] = field(default_factory=list)  # flows whose SYN got no SYN-ACK
    retransmissions: int = 0
    ts_backwards: list[str] = field(default_factory=list)  # "192.0.2.11: TSval 123 after 456"
    vxlan_mac_mismatch: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)  # source IPs of SYNs
    error: str = ""  # why (the rest of) the capture could not be read

    def lines(self) -> list[str]:
        if self.error and not self.packets:
            return [f"unreadable capture: {self.error}"]
        out = [
            f"{self.packets} packets, {self.syns} SYNs, {self.handshakes} answered by SYN-ACK, "
            f"{self.retransmissions} retransmissions"
        ]
        out += [f"SYN without SYN-ACK: {u}" for u in self.unanswered[:5]]
        out += [f"TCP timestamp went backwards for {t}" for t in self.ts_backwards[:5]]
        out += [f"VXLAN inner destination MAC mismatch: {m}" for m in self.vxlan_mac_mismatch[:5]]
        if self.sources:
            out.append("source IPs of SYNs: " + ", ".join(sorted(self.sources)))
        if self.error:
            out.append(f"the capture stops being readable after {self.packets} packets: {self.error}")
        return out


def analyse(
    pcap: bytes,
    expected_vtep: dict[str, str] | None = None,
    port: int | None = None,
    overlay_macs: dict[str, str] | None = None,
) -> Analysis:
    """expected_vtep: outer destination IP -> the VtepMAC of the node that owns it.
    overlay_macs: pod CIDR -> VtepMAC of its node, to judge frames captured on flannel.1 itself."""
    # scapy takes most of a second to import: only a capture pays for it, not every pytest start;
    # it is the capture extra (plugin.diagnose refuses --capture-pcap without it)
    try:
        from scapy.layers.inet import UDP
        from scapy.layers.vxlan import VXLAN
        from scapy.packet import bind_layers
        from scapy.utils import PcapReader
    except ImportError:
        raise missing_extra("analysing a capture", "scapy", "capture") from None

    # flannel's VXLAN port is not IANA's 4789
    bind_layers(UDP, VXLAN, dport=VXLAN_PORT)
    bind_layers(UDP, VXLAN, sport=VXLAN_PORT)
    a = Analysis()
    expected_vtep = {k: v.lower() for k, v in (expected_vtep or {}).items()}
    seen_seg: set[tuple[Any, ...]] = set()
    syn_flows: dict[tuple[Any, ...], bool] = {}
    last_ts: dict[tuple[Any, str], tuple[int, tuple[Any, ...]]] = {}
    try:
        _read_packets(PcapReader, io.BytesIO(pcap), a, port, expected_vtep, overlay_macs, seen_seg, syn_flows, last_ts)
    except Exception as exc:  # boundary: scapy fails its own ways on bytes that are not (all) a pcap
        a.error = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    a.unanswered = [f"{f[1]}:{f[2]} -> {f[3]}:{f[4]}" for f, ok in syn_flows.items() if not ok]
    return a


def _read_packets(
    reader: Any,
    data: io.BytesIO,
    a: Analysis,
    port: int | None,
    expected_vtep: dict[str, str],
    overlay_macs: dict[str, str] | None,
    seen_seg: set[tuple[Any, ...]],
    syn_flows: dict[tuple[Any, ...], bool],
    last_ts: dict[tuple[Any, str], tuple[int, tuple[Any, ...]]],
) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    for pkt in reader(data):
        if a.packets >= MAX_PACKETS:
            a.error = f"more than {MAX_PACKETS} packets; the rest not read"
            return
        a.packets += 1
        view = getattr(pkt, "ifindex", None) if hasattr(pkt, "ifindex") else None  # SLL2 (-i any)
        tcp_ip = None
        if pkt.haslayer(VXLAN):
            vx = pkt[VXLAN]
            inner = vx.payload
            oip = pkt[IP].dst if pkt.haslayer(IP) else None
            want = expected_vtep.get(oip or "")
            if isinstance(inner, Ether) and want and inner.dst.lower() != want:
                a.vxlan_mac_mismatch.append(f"to {oip}: inner dst {inner.dst.lower()}, expected VtepMAC {want}")
            if inner.haslayer(TCP) and inner.haslayer(IP):
                tcp_ip = inner[IP]
            view = (view, "vxlan")
        elif pkt.haslayer(TCP) and pkt.haslayer(IP):
            tcp_ip = pkt[IP]
            if isinstance(pkt, Ether) and overlay_macs:  # a flannel.1 capture: dst MAC = neighbour entry used
                dst = ipaddress.ip_address(tcp_ip.dst)
                want = next(
                    (m.lower() for c, m in overlay_macs.items() if dst in ipaddress.ip_network(c, strict=False)), None
                )
                if want and pkt.dst.lower() != want:
                    a.vxlan_mac_mismatch.append(
                        f"on flannel.1 to {tcp_ip.dst}: dst {pkt.dst.lower()}, expected VtepMAC {want}"
                    )
        if tcp_ip is None:
            continue
        t = tcp_ip[TCP]
        if port is not None and port not in (t.sport, t.dport):
            continue
        flags = int(t.flags)
        flow = (view, tcp_ip.src, t.sport, tcp_ip.dst, t.dport)
        seg = flow + (t.seq, flags, len(t.payload))
        if seg in seen_seg and (flags & 0x02 or len(t.payload)):
            a.retransmissions += 1
        seen_seg.add(seg)
        syn, ack = bool(flags & 0x02), bool(flags & 0x10)
        if syn and not ack:
            if flow not in syn_flows:
                a.syns += 1
                syn_flows[flow] = False
            a.sources.add(tcp_ip.src)
            ts = dict((o[0], o[1]) for o in t.options if isinstance(o, tuple)).get("Timestamp")
            if ts:
                key = (view, tcp_ip.src)
                prev = last_ts.get(key)
                conn = (t.sport, tcp_ip.dst, t.dport)
                if prev and prev[1] != conn and ts[0] < prev[0]:
                    # what PAWS with tcp_tw_recycle drops: a newer connection from the same IP with an older clock
                    a.ts_backwards.append(f"{tcp_ip.src}: TSval {ts[0]} after {prev[0]} (port {t.sport})")
                last_ts[key] = (ts[0], conn)
        elif syn and ack:
            back = (view, tcp_ip.dst, t.dport, tcp_ip.src, t.sport)
            if back in syn_flows and not syn_flows[back]:
                syn_flows[back] = True
                a.handshakes += 1


def verdict(client: tuple[str, Analysis] | None, server: tuple[str, Analysis] | None) -> str:
    """Where the retried connections were lost, from the captures on the probe pods' host-side interfaces
    (seed 2's reading): (interface, analysis) of the client's and of the server's, either may be missing."""
    c, s = (client[1] if client else None), (server[1] if server else None)
    ci, si = (client[0] if client else ""), (server[0] if server else "")
    if c is None and s is None:
        return "no capture on a probe pod's host-side interface (see the lines above)"
    if c is not None and c.syns == 0:
        return f"the client pod sent no SYN on {ci} during the retry (see the retry's result)"
    if c is not None and c.syns and c.handshakes == c.syns:
        return f"every SYN the client sent on {ci} was answered: the failure did not repeat during the capture"
    if s is None:
        return f"the client's SYNs on {ci} went unanswered; the server side was not captured"
    if s.syns == 0:
        lost = f"the client's SYNs left on {ci} and " if c is not None else "the SYNs "
        return f"{lost}never reached the server pod's {si}: lost on the way there"
    if s.handshakes == 0:
        return f"the SYNs reached the server pod's {si} and it sent no SYN-ACK: refused or dropped at the server"
    if c is None:
        return f"the server pod answered on {si}; the client side was not captured"
    return f"the server pod answered on {si} (SYN-ACK), and the answers never reached the client's {ci}: lost on the way back"
