"""--capture-pcap: retry a failing TCP path under tcpdump on its nodes; analyse the pcap with scapy.

The analysis functions are pure (bytes in, facts out) and tested on real captures
made in network namespaces (tests/data/recorded/pcap/).
"""

from __future__ import annotations

import base64
import io
import ipaddress
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from netconform.dialing.fanout import dial_from
from netconform.dialing.model import Source, Target
from netconform.dialing.path import PathInfo
from netconform.errors import error_text, missing_extra
from netconform.kube.connect import make_api_client
from netconform.nodes import NodeHosts
from netconform.workload.labels import role_selector

from .facts import ClusterFacts

__all__ = ["Analysis", "analyse", "capture_path"]

VXLAN_PORT = 8472
REDIAL_TIMEOUT_MS = 2000
REDIAL_COUNT = 3
MAX_PACKETS = 200_000  # tcpdump -s 256 for --capture-seconds at most: far more is not our capture


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


# ---------------------------------------------------------------- live capture through the node hosts


def _tcpdump_cmd(seconds: int, bpf: str, iface: str = "any", tag: str = "") -> str:
    # setsid: tcpdump must outlive this exec; the pid file lets us stop exactly our own process.
    # -Z root: Debian's tcpdump otherwise switches to user `tcpdump`, which an agent image may lack
    f = f"/tmp/nc-cap{tag}"
    return (
        f"rm -f {f}.pcap; setsid timeout {seconds} tcpdump -Z root -i {iface} -U -n -s 256 -w {f}.pcap "
        f"{shlex.quote(bpf)} >{f}.log 2>&1 & echo $! >{f}.pid; sleep 1; echo started"
    )


@dataclass
class Captured:
    """What `capture_path` produced: lines for the diagnosis section and the pcaps by capture name."""

    text: str
    pcaps: dict[str, bytes] = field(default_factory=dict)


def capture_path(
    hosts: NodeHosts,
    facts: ClusterFacts,
    configuration: k8s.Configuration,
    namespace: str,
    paths: list[PathInfo],
    seconds: int,
    save: Callable[[str, bytes], str | None],
) -> Captured:
    """Retry the first failing TCP path under tcpdump on its nodes; `save(name, data)` keeps a pcap."""
    path = next((p for p in paths if p.target_port and p.check != "dns"), None)
    if path is None or not path.src_node:
        return Captured("capture: no TCP path to retry\n")
    nodes = sorted({n for n in (path.src_node, path.dst_node or facts.node_of_ip(path.target_ip)) if n})
    bpf = f"host {path.target_ip} or udp port {VXLAN_PORT}"
    try:
        # -i any has cooked headers (no destination MAC): flannel.1 itself is captured with its Ethernet
        # header too, where a stale neighbour MAC shows even when no FDB entry lets the frame leave
        start = [(n, _tcpdump_cmd(seconds, bpf)) for n in nodes] + [
            (n, _tcpdump_cmd(seconds, f"tcp port {path.target_port}", "flannel.1", "-fl")) for n in nodes
        ]
        with ThreadPoolExecutor(len(start)) as pool:
            list(pool.map(lambda nc: hosts.run(nc[0], nc[1], 20), start))
        retry_note = _redial(configuration, namespace, path)
        time.sleep(1)
        pcaps: dict[str, bytes] = {}
        logs: dict[str, str] = {}  # tcpdump's own words: why a capture came back empty
        for n in nodes:
            for tag, key in (("", n), ("-fl", f"{n}-flannel.1")):
                f = f"/tmp/nc-cap{tag}"
                hosts.run(n, f"kill -INT $(cat {f}.pid) 2>/dev/null; sleep 1; true", 15)
                res = hosts.run(n, f"base64 {f}.pcap && rm -f {f}.pcap {f}.pid", 30)
                pcaps[key] = base64.b64decode("".join(res.stdout.split()) or b"")
                logs[key] = hosts.run(n, f"tail -3 {f}.log 2>/dev/null; true", 15).stdout.strip()
    except Exception as exc:  # boundary: capture is best effort; say why, never lose the diagnosis made
        return Captured(f"capture failed: {error_text(exc)}\n")
    expected = {nf.public_ip or nf.internal_ip or "": nf.vtep_mac for nf in facts.nodes.values() if nf.vtep_mac}
    overlay = {c: nf.vtep_mac for nf in facts.nodes.values() if nf.vtep_mac for c in nf.pod_cidrs}
    lines = [f"capture ({seconds}s, retry: {retry_note}):"]
    for n, data in pcaps.items():
        if not data:
            lines.append(f"  {n}: empty capture")
            continue
        saved = save(n, data)
        if saved:
            lines.append(f"  {n}: pcap {saved}")
        an = analyse(data, expected, path.target_port, overlay)
        lines += [f"  {n}: {line}" for line in an.lines()]
        if not an.packets and logs.get(n):
            lines += [f"  {n}: tcpdump: {x}" for x in logs[n].splitlines()]
    return Captured("\n".join(lines) + "\n", pcaps)


def _redial(configuration: k8s.Configuration, namespace: str, path: PathInfo) -> str:
    """Dial the failed target again from the client pod on the source node (one `probe dial`)."""
    core = k8s.CoreV1Api(make_api_client(configuration))
    pods = core.list_namespaced_pod(
        namespace,
        label_selector=role_selector("client"),
        field_selector=f"spec.nodeName={path.src_node}",
        _request_timeout=10,
    ).items
    if not pods or not path.src_node or path.target_port is None:
        return f"no client pod on {path.src_node}"
    pod = pods[0]
    name = pod.metadata.name if pod.metadata else None
    ip = pod.status.pod_ip if pod.status else None
    source = Source(str(name), str(ip or ""), path.src_node)
    target = Target("retry", "tcp", path.target_ip, path.target_port, path.check, count=REDIAL_COUNT)
    outcome = dial_from(configuration, namespace, source, [target], REDIAL_TIMEOUT_MS)
    if outcome.error is not None or not outcome.results:
        return f"probe said: {(outcome.error or 'no result')[:120]}"
    attempts = outcome.results[0].attempts
    return f"{sum(1 for a in attempts if a.ok)}/{len(attempts)} ok"
