"""scapy analysis on REAL captures made in netns (tests/data/recorded/pcap, see README)."""

from netconform.diagnose.capture import analyse

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
