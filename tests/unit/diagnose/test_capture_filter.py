"""--capture-pcap's filters, judged by the real libpcap: tcpdump reads a crafted pcap through the filter built
for a RECORDED failed path, and keeps the probe's packets and nothing of other pods' flows.

Paths and facts: tests/data/recorded/lab/stale_arp (IPv4) and variants/nftables-vxlan-dual/stale-arp
(IPv6: the recorded pods' addresses, from its MTU path, dialed on the TCP check's port). Packets: scapy,
each with its own timestamp (its index), which `tcpdump -tt` prints for every packet the filter kept.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinuxV2, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from netconform.diagnose.capture_filter import VXLAN_PORT, Flow, any_filter, link_filter, snap_length
from netconform.diagnose.capture_live import path_flows
from netconform.diagnose.facts_record import facts_from_dict
from netconform.dialing.path import PathInfo
from netconform.workload.labels import HTTP_PORT

from .conftest import RECORDED

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="judging a filter needs tcpdump (libpcap)")


def recorded(case: str, test_id: str) -> tuple[PathInfo, object]:
    paths = json.loads((RECORDED / case / "paths.json").read_text())
    facts = facts_from_dict(json.loads((RECORDED / case / "facts.json").read_text()))
    return PathInfo.from_value(paths[test_id][0]), facts


def kept(tmp_path: Path, packets: list[Packet], bpf: str) -> set[int]:
    """Indexes of the packets libpcap's compiled `bpf` accepts (tcpdump -r, timestamps = indexes)."""
    for i, p in enumerate(packets):
        p.time = i
    f = tmp_path / "in.pcap"
    wrpcap(str(f), packets)
    done = subprocess.run(
        ["tcpdump", "-r", str(f), "-tt", "-nn", bpf], capture_output=True, text=True, timeout=30, check=True
    )
    # one line per packet starts with its timestamp (a VXLAN packet's inner headers follow on their own line)
    return {int(m.group(1)) for m in re.finditer(r"^(\d+)\.\d{6} ", done.stdout, re.M)}


def tcp(src: str, dst: str, sport: int, dport: int, flags: str = "S", ipopts: bool = False) -> Packet:
    options = [("MSS", 1410), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
    if ":" in src:
        return IPv6(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, options=options)
    ip = IP(src=src, dst=dst, options=[b"\x94\x04\x00\x00"] if ipopts else [])
    return ip / TCP(sport=sport, dport=dport, flags=flags, options=options) / Raw(b"GET / HTTP/1.1\r\n")


def vxlan(inner: Packet, outer: tuple[str, str], dport: int = VXLAN_PORT) -> Packet:
    """What flannel.1 sends on the underlay: outer IP/UDP/VXLAN, the inner Ethernet frame."""
    o = IPv6(src=outer[0], dst=outer[1]) if ":" in outer[0] else IP(src=outer[0], dst=outer[1])
    return (
        o
        / UDP(sport=51000, dport=dport)
        / VXLAN(vni=1, flags=0x08)
        / Ether(src="7e:00:00:00:00:01", dst="7e:00:00:00:00:02")
        / inner
    )


LINK = Ether(src="0a:58:0a:f4:00:51", dst="0a:58:0a:f4:00:01")


# --------------------------------------------------------------- IPv4, the recorded stale-arp path

PATH4, FACTS4 = recorded("lab/stale_arp", "suites/test_pod_to_pod.py::test_tcp_cross_node[lab-node-1-to-lab-node-2]")
C, S = PATH4.src_ip, PATH4.target_ip  # nc-client on lab-node-1, nc-server on lab-node-2
OTHER_POD, OTHER_LOCAL, OTHER_SERVER = "10.244.0.99", "10.244.1.50", "10.244.2.77"


def ipv4_packets() -> tuple[list[Packet], set[int], set[int]]:
    """Packets of every kind, which of them are the probe's seen by the client / by the server."""
    flows = [
        tcp(C, S, 40000, 8080),  # 0 the client's SYN
        tcp(S, C, 8080, 40000, "SA"),  # 1 the server's SYN-ACK
        tcp("10.244.0.0", S, 40001, 8080),  # 2 the client masqueraded to lab-node-1's flannel.1 (seed 3)
        tcp(OTHER_POD, S, 40000, 8080),  # 3 another pod to our server
        tcp(C, OTHER_SERVER, 40000, 8080),  # 4 our client to another server: another path
        tcp(OTHER_POD, OTHER_LOCAL, 40000, 8080),  # 5 two other pods on the probe port
        tcp(C, S, 40000, 9090),  # 6 our pods on another port
        IP(src=C, dst=S) / UDP(sport=40000, dport=8080),  # 7 UDP on the probe port
        tcp(S, OTHER_LOCAL, 8080, 40000, "SA"),  # 8 our server answering another local pod
        tcp(C, S, 40002, 8080, ipopts=True),  # 9 the probe's SYN with IPv4 options (IHL 6)
        tcp("10.244.1.1", S, 40003, 8080),  # 10 the kubelet's probe of our server, from its node's cni0 (lab)
    ]
    client, server = {0, 1, 9}, {0, 1, 2, 9}
    return flows, client, server


def test_flows_built_for_the_recorded_path() -> None:
    client, server = path_flows(PATH4, FACTS4, C, S)
    assert client == Flow("10.244.0.81", ("10.244.1.77",), 8080)
    assert server is not None and server.pod == "10.244.1.77" and server.port == 8080
    assert server.peers == ("10.244.0.81", "10.99.0.11", "10.244.0.0")  # the client, or its node masquerading it


def test_a_pod_side_filter_keeps_only_that_end_of_the_probe(tmp_path: Path) -> None:
    client, server = path_flows(PATH4, FACTS4, C, S)
    assert client and server
    plain, want_client, want_server = ipv4_packets()
    frames = [LINK / p for p in plain]
    assert kept(tmp_path, frames, link_filter([client])) == want_client
    assert kept(tmp_path, frames, link_filter([server])) == want_server
    assert kept(tmp_path, frames, link_filter([client, server])) == want_client | want_server  # flannel.1


def test_the_underlay_filter_matches_inner_headers_of_the_probe_only(tmp_path: Path) -> None:
    client, server = path_flows(PATH4, FACTS4, C, S)
    assert client and server
    plain, want_client, want_server = ipv4_packets()
    outer = ("10.99.0.11", "10.99.0.12")
    wrapped = [vxlan(p, outer) for p in plain]
    elsewhere = [vxlan(plain[0], outer, dport=4789)]  # the probe's SYN, but not in flannel's VXLAN
    packets = [CookedLinuxV2(proto=0x0800) / p for p in plain + wrapped + elsewhere]  # as -i any writes them
    want = want_client | want_server
    assert kept(tmp_path, packets, any_filter([client, server])) == want | {len(plain) + i for i in want}


# --------------------------------------------------------------- IPv6, the recorded dual-stack pods


def test_ipv6_flows_on_the_pod_side_and_in_vxlan_over_ipv6(tmp_path: Path) -> None:
    mtu, facts = recorded(
        "variants/nftables-vxlan-dual/stale-arp",
        "suites/test_mtu.py::test_full_size_datagram_crosses_nodes[ipv6-lab-node-1-to-lab-node-2]",
    )
    c6, s6 = mtu.src_ip, mtu.target_ip
    path = PathInfo("pod_to_pod", mtu.src_node, mtu.dst_node, f"[{s6}]:{HTTP_PORT}", "timeout", src_ip=c6)
    client, server = path_flows(path, facts, c6, s6)
    assert client and server and client.family == 6 and "fd10:99::11" in server.peers
    plain = [
        tcp(c6, s6, 40000, HTTP_PORT),  # 0 probe SYN
        tcp(s6, c6, HTTP_PORT, 40000, "SA"),  # 1 probe SYN-ACK
        tcp("fd10:244::99", s6, 40000, HTTP_PORT),  # 2 another pod to our server
        tcp(c6, s6, 40000, 9090),  # 3 another port
        tcp("fd10:244::99", "fd10:244:0:1::50", 40000, HTTP_PORT),  # 4 other pods
    ]
    assert kept(tmp_path, [LINK / p for p in plain], link_filter([client, server])) == {0, 1}
    wrapped = [vxlan(p, ("fd10:99::11", "fd10:99::12")) for p in plain]
    packets = [CookedLinuxV2(proto=0x86DD) / p for p in plain + wrapped]
    assert kept(tmp_path, packets, any_filter([client, server])) == {0, 1, 5, 6}


# --------------------------------------------------------------- snap length and validation


@pytest.mark.parametrize("family", [4, 6])
def test_the_snap_length_keeps_every_header_and_no_payload(family: int) -> None:
    """The longest headers a probe SYN carries fit exactly; past them the payload starts."""
    c, s = ("10.244.0.81", "10.244.1.77") if family == 4 else ("fd10:244::5", "fd10:244:0:1::4")
    full = TCP(sport=40000, dport=8080, flags="S", options=[("Timestamp", (1, 0))] + [("NOP", None)] * 30)
    assert len(full) == 60  # the longest TCP header
    inner = (IP(src=c, dst=s) if family == 4 else IPv6(src=c, dst=s)) / full
    outer = ("10.99.0.11", "10.99.0.12") if family == 4 else ("fd10:99::11", "fd10:99::12")
    assert len(LINK / inner) == snap_length(family, vxlan=False)
    assert len(CookedLinuxV2() / vxlan(inner, outer)) == snap_length(family, vxlan=True)


@pytest.mark.parametrize(
    "pod, peers, port",
    [
        ("10.244.0.81 or host 0/0", ("10.244.1.77",), 8080),  # filter injection
        ("10.244.0.81", ("fd10::1",), 8080),  # mixed families
        ("10.244.0.81", ("10.244.1.77",), 0),
        ("10.244.0.81", ("10.244.1.77",), 65536),
        ("10.244.0.81", (), 8080),
        ("10.244.0.81", tuple(f"10.0.0.{i}" for i in range(17)), 8080),
        ("-i", ("10.244.1.77",), 8080),
    ],
)
def test_a_flow_refuses_what_is_not_an_address_or_port(pod: str, peers: tuple[str, ...], port: int) -> None:
    with pytest.raises(ValueError):
        Flow(pod, peers, port)
