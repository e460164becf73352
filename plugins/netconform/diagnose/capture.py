"""--capture-pcap: retry a failing TCP path under tcpdump on its nodes; analyse the pcap with scapy.

The analysis functions are pure (bytes in, facts out) and tested on real captures
made in network namespaces (tests/data/recorded/pcap/).
"""

from __future__ import annotations

import base64
import io
import json
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import PathRef

if TYPE_CHECKING:
    from .plugin import Diagnoser

VXLAN_PORT = 8472


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

    def lines(self) -> list[str]:
        out = [
            f"{self.packets} packets, {self.syns} SYNs, {self.handshakes} answered by SYN-ACK, "
            f"{self.retransmissions} retransmissions"
        ]
        out += [f"SYN without SYN-ACK: {u}" for u in self.unanswered[:5]]
        out += [f"TCP timestamp went backwards for {t}" for t in self.ts_backwards[:5]]
        out += [f"VXLAN inner destination MAC mismatch: {m}" for m in self.vxlan_mac_mismatch[:5]]
        if self.sources:
            out.append("source IPs of SYNs: " + ", ".join(sorted(self.sources)))
        return out


def _layers() -> None:
    from scapy.layers.inet import UDP
    from scapy.layers.vxlan import VXLAN
    from scapy.packet import bind_layers

    # flannel's VXLAN port is not IANA's 4789
    bind_layers(UDP, VXLAN, dport=VXLAN_PORT)
    bind_layers(UDP, VXLAN, sport=VXLAN_PORT)


def analyse(
    pcap: bytes,
    expected_vtep: dict[str, str] | None = None,
    port: int | None = None,
    overlay_macs: dict[str, str] | None = None,
) -> Analysis:
    """expected_vtep: outer destination IP -> the VtepMAC of the node that owns it.
    overlay_macs: pod CIDR -> VtepMAC of its node, to judge frames captured on flannel.1 itself."""
    import ipaddress

    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import PcapReader

    _layers()
    a = Analysis()
    expected_vtep = {k: v.lower() for k, v in (expected_vtep or {}).items()}
    seen_seg: set[tuple[Any, ...]] = set()
    syn_flows: dict[tuple[Any, ...], bool] = {}
    last_ts: dict[tuple[Any, str], tuple[int, tuple[Any, ...]]] = {}
    for pkt in PcapReader(io.BytesIO(pcap)):
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
    a.unanswered = [f"{f[1]}:{f[2]} -> {f[3]}:{f[4]}" for f, ok in syn_flows.items() if not ok]
    return a


# ---------------------------------------------------------------- live capture through the agent


def _tcpdump_cmd(seconds: int, bpf: str, iface: str = "any", tag: str = "") -> str:
    # setsid: tcpdump must outlive this exec; the pid file lets us stop exactly our own process.
    # -Z root: Debian's tcpdump otherwise switches to user `tcpdump`, which an agent image may lack
    f = f"/tmp/nc-cap{tag}"
    return (
        f"rm -f {f}.pcap; setsid timeout {seconds} tcpdump -Z root -i {iface} -U -n -s 256 -w {f}.pcap "
        f"{shlex.quote(bpf)} >{f}.log 2>&1 & echo $! >{f}.pid; sleep 1; echo started"
    )


def capture_for_report(diag: Diagnoser, paths: list[PathRef], report: Any) -> str:
    """Retry the first failing TCP path under tcpdump; returns text for the diagnosis section."""
    path = next((p for p in paths if p.target_port and p.check != "dns"), None)
    if path is None or not path.src_node:
        return "capture: no TCP path to retry\n"
    facts = diag.facts()
    nodes = sorted({n for n in (path.src_node, path.dst_node or facts.node_of_ip(path.target_ip)) if n})
    seconds = int(diag.config.getoption("capture_seconds"))
    bpf = f"host {path.target_ip} or udp port {VXLAN_PORT}"
    try:
        # -i any has cooked headers (no destination MAC): flannel.1 itself is captured with its Ethernet
        # header too, where a stale neighbour MAC shows even when no FDB entry lets the frame leave
        start = [(n, _tcpdump_cmd(seconds, bpf)) for n in nodes] + [
            (n, _tcpdump_cmd(seconds, f"tcp port {path.target_port}", "flannel.1", "-fl")) for n in nodes
        ]
        with ThreadPoolExecutor(len(start)) as pool:
            list(pool.map(lambda nc: diag.hosts.run(nc[0], nc[1], 20), start))
        retry_note = _redial(diag, path)
        time.sleep(1)
        pcaps: dict[str, bytes] = {}
        logs: dict[str, str] = {}  # tcpdump's own words: why a capture came back empty
        for n in nodes:
            for tag, key in (("", n), ("-fl", f"{n}-flannel.1")):
                f = f"/tmp/nc-cap{tag}"
                diag.hosts.run(n, f"kill -INT $(cat {f}.pid) 2>/dev/null; sleep 1; true", 15)
                res = diag.hosts.run(n, f"base64 {f}.pcap && rm -f {f}.pcap {f}.pid", 30)
                pcaps[key] = base64.b64decode("".join(res.stdout.split()) or b"")
                logs[key] = diag.hosts.run(n, f"tail -3 {f}.log 2>/dev/null; true", 15).stdout.strip()
    except Exception as exc:  # capture is best effort: say why, never fail the report
        return f"capture failed: {exc}\n"
    expected = {nf.public_ip or nf.internal_ip or "": nf.vtep_mac for nf in facts.nodes.values() if nf.vtep_mac}
    overlay = {c: nf.vtep_mac for nf in facts.nodes.values() if nf.vtep_mac for c in nf.pod_cidrs}
    lines = [f"capture ({seconds}s, retry: {retry_note}):"]
    report.netconform_pcaps = {}
    for n, data in pcaps.items():
        report.netconform_pcaps[n] = base64.b64encode(data).decode()  # for allure attachments
        if not data:
            lines.append(f"  {n}: empty capture")
            continue
        saved = _save(diag, report.nodeid, n, data)
        if saved:
            lines.append(f"  {n}: pcap {saved}")
        an = analyse(data, expected, path.target_port, overlay)
        lines += [f"  {n}: {line}" for line in an.lines()]
        if not an.packets and logs.get(n):
            lines += [f"  {n}: tcpdump: {x}" for x in logs[n].splitlines()]
    return "\n".join(lines) + "\n"


def _save(diag: Diagnoser, nodeid: str, node: str, data: bytes) -> str | None:
    """Write the pcap where the operator can open it: --diagnose-record DIR/pcap, else a temp directory."""
    import re
    import tempfile
    from pathlib import Path

    try:
        where = diag.config.getoption("diagnose_record", None)
        if not getattr(diag, "pcap_dir", None):
            diag.pcap_dir = str(Path(where) / "pcap") if where else tempfile.mkdtemp(prefix="netconform-pcap-")
        d = Path(diag.pcap_dir)
        d.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.rpartition("::")[2])[:80]
        f = d / f"{name}-{node}.pcap"
        f.write_bytes(data)
        return str(f)
    except (OSError, ValueError):
        return None


def _redial(diag: Diagnoser, path: PathRef) -> str:
    """Dial the failed target again from the client pod on the source node (probe dial)."""
    from kubernetes import client

    from netconform.nodes import K8sExecBackend

    core = client.CoreV1Api(diag.api_factory())
    pods = core.list_namespaced_pod(
        diag.namespace,
        label_selector="netconform.io/role=client",
        field_selector=f"spec.nodeName={path.src_node}",
        _request_timeout=10,
    ).items
    if not pods:
        return f"no client pod on {path.src_node}"
    spec = {
        "timeout_ms": 2000,
        "targets": [{"id": "retry", "proto": "tcp", "host": path.target_ip, "port": path.target_port, "count": 3}],
    }
    be = K8sExecBackend(pods[0].metadata.name, diag.namespace, "probe", diag.api_factory)
    res = be.run_with_timeout(f"/probe dial --spec {shlex.quote(json.dumps(spec))}", 30)
    try:
        attempts = json.loads(res.stdout)["results"][0]["attempts"]
        return f"{sum(1 for x in attempts if x['ok'])}/{len(attempts)} ok"
    except (ValueError, KeyError, IndexError):
        return f"probe said: {res.stdout.strip()[:120] or res.stderr.strip()[:120]}"
