"""scapy analysis on REAL captures made in netns (tests/data/recorded/pcap, see README)."""

import base64
import types

import pytest

from netconform.diagnose import capture, capture_live
from netconform.diagnose.capture import analyse
from netconform.diagnose.facts_record import facts_from_dict
from netconform.dialing.model import Attempt, DialResult, Source, SourceOutcome, Target
from netconform.dialing.path import PathInfo

from .conftest import RECORDED

VTEPS = {"192.0.2.11": "4e:00:00:00:00:01", "192.0.2.12": "4e:00:00:00:00:02"}


def pcap(name: str) -> bytes:
    return (RECORDED / "pcap" / name).read_bytes()


def test_stale_arp_capture_shows_wrong_inner_mac_and_no_synack():
    a = analyse(pcap("vxlan_stale_arp.pcap"), VTEPS)
    assert (
        a.vxlan_mac_mismatch
        and "inner dst 4e:00:00:00:0f:02, expected VtepMAC 4e:00:00:00:00:02" in a.vxlan_mac_mismatch[0]
    )
    assert a.unanswered == ["10.244.1.2:48176 -> 10.244.2.2:8080"] and a.retransmissions >= 1


def test_healthy_vxlan_capture_is_clean():
    a = analyse(pcap("vxlan_healthy.pcap"), VTEPS)
    assert a.syns == 2 and a.handshakes == 2 and not a.vxlan_mac_mismatch and not a.unanswered
    assert a.retransmissions == 0 and not a.ts_backwards


def test_syn_without_synack_and_retransmission():
    a = analyse(pcap("syn_no_synack.pcap"), port=8080)
    assert a.syns == 1 and a.handshakes == 0 and a.retransmissions == 1
    assert a.sources == {"10.244.1.2"}


def test_timestamps_go_backwards_behind_nat():
    a = analyse(pcap("nat_timestamps.pcap"), port=8080)
    assert a.sources == {"192.0.2.11"} and a.handshakes == 6
    assert a.ts_backwards and all(t.startswith("192.0.2.11: TSval") for t in a.ts_backwards)


def test_single_client_timestamps_do_not_go_backwards():
    # the healthy capture has two connections from one pod: one clock, no false alarm
    assert analyse(pcap("vxlan_healthy.pcap")).ts_backwards == []


LAB = RECORDED / "capture" / "netns_flannel"  # a flannel-shaped node's answers (test_capture_iface.py)


def recorded_pods() -> dict[str, tuple[str, str, str]]:
    """role -> (pod, node, IP): the recording's client on one node and the server on another."""
    rows = [line.split() for line in (LAB / "podmap.txt").read_text().splitlines() if line.strip()]
    client = rows[0]
    server = next(r for r in rows if r[1] != client[1])
    return {"client": (client[0], client[1], client[2]), "server": (server[0], server[1], server[2])}


class FakeHosts:
    """Node hosts answering the capture's commands: the recorded link tables and routes, tcpdump starts,
    the pcap of each capture point comes back in base64 (`pcaps`: file tag -> bytes, per node)."""

    def __init__(self, pcaps: dict[tuple[str, str], bytes]) -> None:
        self.pcaps, self.commands = pcaps, []

    def run(self, node: str, command: str, timeout_s: float = 60.0) -> types.SimpleNamespace:
        self.commands.append((node, command))
        out = ""
        if command == "ip -o link show":
            out = (LAB / f"links-{node}.txt").read_text()
        elif command.startswith("ip -o route get "):
            out = (LAB / f"route-{node}-{command.split()[-1]}.txt").read_text()
        elif command.startswith("base64 /tmp/nc-cap"):
            tag = command.split()[1][len("/tmp/nc-cap") : -len(".pcap")]
            out = base64.b64encode(self.pcaps.get((node, tag), b"")).decode()
        return types.SimpleNamespace(rc=0, stdout=out, stderr="")


class FakeCore:
    """The API's pod list for the recorded probe pods (the namespace's client and server DaemonSet pods)."""

    def __init__(self, api: object) -> None:
        pass

    def list_namespaced_pod(self, namespace: str, **kwargs: str) -> types.SimpleNamespace:
        role = kwargs["label_selector"].rpartition("=")[2]
        node = kwargs["field_selector"].rpartition("=")[2]
        items = [
            types.SimpleNamespace(
                metadata=types.SimpleNamespace(name=pod),
                status=types.SimpleNamespace(pod_ip=ip, pod_ips=[types.SimpleNamespace(ip=ip)]),
            )
            for r, (pod, n, ip) in recorded_pods().items()
            if r == role and n == node
        ]
        return types.SimpleNamespace(items=items)


def test_capture_path_captures_on_both_pods_veths_and_says_where_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    pods = recorded_pods()
    (client, cnode, cip), (server, snode, sip) = pods["client"], pods["server"]
    facts = facts_from_dict(
        {
            "nodes": [
                {"name": cnode, "internal_ip": "10.99.0.11", "pod_cidrs": [f"{cip.rsplit('.', 1)[0]}.0/24"]},
                {"name": snode, "internal_ip": "10.99.0.12", "pod_cidrs": [f"{sip.rsplit('.', 1)[0]}.0/24"]},
            ]
        }
    )
    redialed: list[PathInfo] = []
    monkeypatch.setattr(capture_live, "_redial", lambda cfg, ns, path: redialed.append(path) or "0/3 ok")
    monkeypatch.setattr(capture_live, "make_api_client", lambda cfg: object())
    monkeypatch.setattr(capture_live.k8s, "CoreV1Api", FakeCore)
    asked: list[str] = []

    def run_in_pod(cfg: object, ns: str, pod: str, command: list[str], **kw: object) -> types.SimpleNamespace:
        asked.append(pod)
        return types.SimpleNamespace(rc=0, stdout=(LAB / f"iflink-{pod}.txt").read_text(), stderr="")

    monkeypatch.setattr(capture_live, "run_in_pod", run_in_pod)
    hosts = FakeHosts({(cnode, "-pod0"): pcap("syn_no_synack.pcap")})
    saved: dict[str, bytes] = {}
    path = PathInfo("pod_to_pod", cnode, snode, f"{sip}:8080", "timeout", src_pod=client, src_ip=cip)
    got = capture_live.capture_path(
        hosts, facts, None, "netconform-x", [path], 3, lambda name, data: saved.setdefault(name, data) and f"/x/{name}"
    )
    assert redialed == [path] and asked == [client, server]
    dumps = [c for _, c in hosts.commands if "tcpdump" in c]
    assert len(dumps) == 4  # -i any on both nodes, then each pod's veth (no VtepMAC in these facts: no flannel.1)
    lines = got.text.splitlines()
    assert lines[0].startswith(
        f"capture (3s, retry: 0/3 ok): only the probe's TCP flows (client {cip} with {sip} on port 8080;"
    )
    client_line = next(line for line in lines if "the host side of client pod" in line)
    assert f"the host side of client pod {client} ({cip}): the veth peer of the pod's eth0 (iflink" in client_line
    veth = client_line.split()[0].removeprefix(f"{cnode}-").rstrip(":")
    assert f"-i {veth} -U -n -s 94 " in next(c for c in dumps if f"-i {veth} " in c)
    assert f"  {cnode}-{veth}: pcap /x/{cnode}-{veth}" in lines
    assert f"  {cnode}-{veth}: SYN without SYN-ACK: 10.244.1.2:" in got.text  # the recorded pcap's flow
    assert f"  {snode}: empty capture" in lines
    # the server's veth capture came back empty: the verdict says what the client's alone shows
    assert lines[-1] == f"  verdict: the client's SYNs on {veth} went unanswered; the server side was not captured"
    assert saved.keys() == {f"{cnode}-{veth}"}


def test_capture_path_without_a_tcp_path() -> None:
    dns = PathInfo("dns", "n1", None, "nc-server.netconform-x", "dns")
    got = capture_live.capture_path(FakeHosts({}), facts_from_dict({}), None, "ns", [dns], 3, lambda n, d: None)
    assert got.text == "capture: no TCP path to retry\n" and got.pcaps == {}


def test_the_retry_is_one_probe_dial_from_the_client_pod_on_the_source_node(monkeypatch: pytest.MonkeyPatch) -> None:
    listed: dict[str, object] = {}

    class FakeCore:
        def __init__(self, api: object) -> None:
            pass

        def list_namespaced_pod(self, namespace: str, **kwargs: object) -> types.SimpleNamespace:
            listed.update(kwargs, namespace=namespace)
            pod = types.SimpleNamespace(
                metadata=types.SimpleNamespace(name="nc-client-abc"), status=types.SimpleNamespace(pod_ip="10.244.1.5")
            )
            return types.SimpleNamespace(items=[pod])

    dialed: list[tuple[str, Source, list[Target], int]] = []

    def dial_from(cfg: object, ns: str, source: Source, targets: list[Target], timeout_ms: int) -> SourceOutcome:
        dialed.append((ns, source, targets, timeout_ms))
        attempts = [Attempt(ok=True), Attempt(ok=False, error="timeout"), Attempt(ok=True)]
        t = targets[0]
        result = DialResult(source.pod, source.ip, source.node, t.id, t.check, t.proto, t.host, t.port, None, attempts)
        return SourceOutcome(source, [result])

    monkeypatch.setattr(capture_live, "make_api_client", lambda cfg: object())
    monkeypatch.setattr(capture_live.k8s, "CoreV1Api", FakeCore)
    monkeypatch.setattr(capture_live, "dial_from", dial_from)
    path = PathInfo("pod_to_pod", "n1", "n2", "10.244.2.2:8080", "timeout")
    assert capture_live._redial(None, "netconform-x", path) == "2/3 ok"
    assert listed == {
        "namespace": "netconform-x",
        "label_selector": "netconform.io/role=client",
        "field_selector": "spec.nodeName=n1",
        "_request_timeout": 10,
    }
    ns, source, targets, timeout_ms = dialed[0]
    assert (ns, source, timeout_ms) == ("netconform-x", Source("nc-client-abc", "10.244.1.5", "n1"), 2000)
    assert [(t.proto, t.host, t.port, t.count) for t in targets] == [("tcp", "10.244.2.2", 8080, 3)]


def test_real_veth_captures_hold_only_the_probe_headers_and_give_a_verdict() -> None:
    """REAL captures (capture/record-netns.sh): tcpdump with the filters capture_filter built, on the client's
    and the server's host-side veths and -i any, while the client made 3 connections to 10.244.1.5:8080,
    another pod on its node 2 and the client one to port 9090: only the client's 3 are there, headers only."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import PcapReader

    for name, snap in (("netns_client_veth.pcap", 94), ("netns_server_veth.pcap", 94), ("netns_client_any.pcap", 150)):
        packets = list(PcapReader(str(RECORDED / "pcap" / name)))
        assert packets and all(len(bytes(p)) <= snap for p in packets), name
        assert any(p.wirelen > snap for p in packets), name  # the HTTP answers were cut to their headers
        inner = [p[IP] for p in packets if p.haslayer(IP)]
        pairs = {(ip.src, ip.dst, ip[TCP].dport if ip.haslayer(TCP) else 0) for ip in inner}
        assert {ip for pair in pairs for ip in pair[:2]} - {"10.99.0.11", "10.99.0.12"} == {"10.244.0.5", "10.244.1.5"}
    client, server = analyse(pcap("netns_client_veth.pcap")), analyse(pcap("netns_server_veth.pcap"))
    assert client.syns == client.handshakes == 3 and server.syns == server.handshakes == 3
    assert capture.verdict(("veth1a2b3c4d", client), ("veth9c0d1e2f", server)) == (
        "every SYN the client sent on veth1a2b3c4d was answered: the failure did not repeat during the capture"
    )
    lost = analyse(pcap("syn_no_synack.pcap"))  # the vxlan_blocked case's client veth: a SYN, never answered
    assert capture.verdict(("veth1a", lost), ("veth2a", analyse(pcap("netns_server_veth.pcap")[:24]))) == (
        "the client's SYNs left on veth1a and never reached the server pod's veth2a: lost on the way there"
    )
