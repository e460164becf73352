"""scapy analysis on REAL captures made in netns (tests/data/recorded/pcap, see README)."""

import base64
import types

import pytest

from netconform.diagnose import capture
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


class FakeHosts:
    """Node hosts that answer the capture's commands: tcpdump starts, the pcap comes back in base64."""

    def __init__(self, pcaps: dict[str, bytes]) -> None:
        self.pcaps, self.commands = pcaps, []

    def run(self, node: str, command: str, timeout_s: float = 60.0) -> types.SimpleNamespace:
        self.commands.append((node, command))
        out = ""
        if command.startswith("base64 /tmp/nc-cap-fl.pcap"):
            out = base64.b64encode(self.pcaps.get(f"{node}-flannel.1", b"")).decode()
        elif command.startswith("base64 /tmp/nc-cap.pcap"):
            out = base64.b64encode(self.pcaps.get(node, b"")).decode()
        return types.SimpleNamespace(rc=0, stdout=out, stderr="")


def test_capture_path_retries_under_tcpdump_and_analyses_what_it_read(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = facts_from_dict(
        {
            "nodes": [
                {"name": "n1", "internal_ip": "192.0.2.11", "pod_cidrs": ["10.244.1.0/24"]},
                {"name": "n2", "internal_ip": "192.0.2.12", "pod_cidrs": ["10.244.2.0/24"]},
            ]
        }
    )
    redialed: list[PathInfo] = []
    monkeypatch.setattr(capture, "_redial", lambda cfg, ns, path: redialed.append(path) or "0/3 ok")
    hosts = FakeHosts({"n1": pcap("syn_no_synack.pcap")})
    saved: dict[str, bytes] = {}
    path = PathInfo("pod_to_pod", "n1", "n2", "10.244.2.2:8080", "timeout")
    got = capture.capture_path(
        hosts, facts, None, "netconform-x", [path], 3, lambda name, data: saved.setdefault(name, data) and f"/x/{name}"
    )
    assert redialed == [path]
    assert [n for n, c in hosts.commands if "tcpdump" in c] == ["n1", "n2", "n1", "n2"]  # -i any, then flannel.1
    assert got.text.startswith("capture (3s, retry: 0/3 ok):\n")
    assert "  n1: pcap /x/n1\n" in got.text and "  n1: SYN without SYN-ACK: 10.244.1.2:" in got.text
    assert "  n2: empty capture\n" in got.text
    assert got.pcaps["n1"] == pcap("syn_no_synack.pcap") and got.pcaps["n2"] == b"" and saved.keys() == {"n1"}


def test_capture_path_without_a_tcp_path() -> None:
    dns = PathInfo("dns", "n1", None, "nc-server.netconform-x", "dns")
    got = capture.capture_path(FakeHosts({}), facts_from_dict({}), None, "ns", [dns], 3, lambda n, d: None)
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

    monkeypatch.setattr(capture, "make_api_client", lambda cfg: object())
    monkeypatch.setattr(capture.k8s, "CoreV1Api", FakeCore)
    monkeypatch.setattr(capture, "dial_from", dial_from)
    path = PathInfo("pod_to_pod", "n1", "n2", "10.244.2.2:8080", "timeout")
    assert capture._redial(None, "netconform-x", path) == "2/3 ok"
    assert listed == {
        "namespace": "netconform-x",
        "label_selector": "netconform.io/role=client",
        "field_selector": "spec.nodeName=n1",
        "_request_timeout": 10,
    }
    ns, source, targets, timeout_ms = dialed[0]
    assert (ns, source, timeout_ms) == ("netconform-x", Source("nc-client-abc", "10.244.1.5", "n1"), 2000)
    assert [(t.proto, t.host, t.port, t.count) for t in targets] == [("tcp", "10.244.2.2", 8080, 3)]
