"""The path MTU between nodes (rules/mtu_path.py, diagnose/pmtu.py) on real DF pings: record.sh's
path_healthy (every size passes both ways) and path_route_mtu (lab-node-1's route to lab-node-2 with
`mtu 1400`, both eth0 at 1500: ping refuses the size locally, "message too long, mtu=1400"), path_switch_port
(node 2's port on a bridge between the nodes at 1400: a silent drop both ways), path_router_mtu (a router
between them, its port to node 2 at 1400: ICMP fragmentation-needed one way), and the lab's
mtu_path when recorded (lab-node-2's port on the lab switch at 1400: a silent drop both ways)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netconform.diagnose.evidence import ClusterEvidence, NodeEvidence
from netconform.diagnose.facts_record import facts_from_dict
from netconform.diagnose.rules import run_rules
from netconform.diagnose.rules.mtu_path import CAUSE

RECORDED = Path(__file__).resolve().parents[2] / "data" / "recorded"


def load(case: str) -> ClusterEvidence:
    facts = facts_from_dict(json.loads((RECORDED / "facts.json").read_text()))
    nodes = {f.stem: NodeEvidence.from_output(f.stem, f.read_text()) for f in sorted((RECORDED / case).glob("*.txt"))}
    return ClusterEvidence(facts, nodes)


def findings(ev: ClusterEvidence) -> list:
    return [f for f in run_rules(ev) if f.cause == CAUSE and f.confidence > 0]


def test_every_size_passes_on_a_healthy_path() -> None:
    ev = load("path_healthy")
    probe = ev.nodes["lab-node-1"].path_probes["192.0.2.12"]
    assert probe.need == 1500 and probe.reachable and not probe.short and probe.lost == set()
    assert 1500 in probe.passed and probe.route_mtu is None
    assert findings(ev) == []


def test_a_route_with_an_mtu_of_its_own_is_named_with_the_route_put_back_as_the_fix() -> None:
    ev = load("path_route_mtu")
    probe = ev.nodes["lab-node-1"].path_probes["192.0.2.12"]
    assert probe.short and probe.local and probe.largest == 1400 and probe.local_mtu == 1400
    assert (probe.route_mtu, probe.learned, probe.icmp_mtu) == (1400, False, None)
    # the other way the path carries every size: lab-node-1 answers a 1500-byte ping (its reply may fragment)
    assert not ev.nodes["lab-node-2"].path_probes["192.0.2.11"].short
    [f] = findings(ev)
    assert (
        f.node == "lab-node-1" and "its route to lab-node-2 (192.0.2.12) has mtu 1400, less than eth0's 1500" in f.title
    )
    assert f.fix == "on lab-node-1: ip route replace 192.0.2.12 dev eth0 scope link (the same route without its mtu)"
    assert "lab-node-1$ ip route show: 192.0.2.12 dev eth0 scope link mtu 1400" in f.evidence


def test_an_uplink_that_is_itself_short_is_left_to_the_uplink_rule() -> None:
    """The same recording with lab-node-1's eth0 read as 1400: its own uplink refuses the size."""
    ev = load("path_route_mtu")
    raw = (RECORDED / "path_route_mtu" / "lab-node-1.txt").read_text()
    text = "\n".join(line.replace("mtu 1500", "mtu 1400") if ": eth0@" in line else line for line in raw.splitlines())
    ev.nodes["lab-node-1"] = NodeEvidence.from_output("lab-node-1", text)
    assert ev.nodes["lab-node-1"].links["eth0"].mtu == 1400
    assert findings(ev) == []


@pytest.mark.parametrize("garbage", ["", "#nc-pmtu 1.2.3 1500 84\n", "#nc-pmtu 10.0.0.1 x 84\n#nc-pmtu-rc 0\n"])
def test_unreadable_probe_output_is_no_probe(garbage: str) -> None:
    from netconform.diagnose import pmtu

    assert pmtu.parse(garbage) == {}


def test_a_switch_port_below_both_ends_is_a_silent_drop_both_ways() -> None:
    """record.sh path_switch_port: lab-node-2's switch port at 1400, both eth0 at 1500. With two nodes either
    end's link may be the short one: the network is named, not a node."""
    ev = load("path_switch_port")
    for node, peer in (("lab-node-1", "192.0.2.12"), ("lab-node-2", "192.0.2.11")):
        probe = ev.nodes[node].path_probes[peer]
        assert probe.short and not probe.local and probe.largest == 1400 and probe.errors == []
        assert (probe.icmp_mtu, probe.route_mtu) == (None, None)
    [f] = findings(ev)
    assert f.node is None and "carries 1400 bytes, less than both ends' uplinks" in f.title
    assert "no ICMP fragmentation-needed came back (a silent drop); eth0 mtu 1500 on this end" in f.evidence[0]
    assert f.fix.startswith("raise the MTU of the network to >= 1500 (what flannel.1 mtu 1450 + 50 of VXLAN needs")
    assert '"Backend": {"Type": "vxlan", "MTU": 1400} (flannel.1 and the pods become 1350)' in f.fix


def test_a_router_hop_below_both_ends_answers_fragmentation_needed() -> None:
    """record.sh path_router_mtu: a router between the nodes (proxy ARP), its port to lab-node-2 at 1400. From
    lab-node-1 the router answers ICMP fragmentation-needed with its MTU; from lab-node-2 the big frame dies on
    the router's 1400 port without one."""
    ev = load("path_router_mtu")
    out = ev.nodes["lab-node-1"].path_probes["192.0.2.12"]
    assert out.short and not out.local and out.icmp_mtu == 1400 and out.largest == 1400
    assert "Frag needed and DF set (mtu = 1400)" in out.errors[0]
    back = ev.nodes["lab-node-2"].path_probes["192.0.2.11"]
    assert back.short and back.icmp_mtu is None and back.errors == []
    [f] = findings(ev)
    assert "ICMP fragmentation-needed: From 192.0.0.8 icmp_seq=1 Frag needed and DF set (mtu = 1400)" in f.evidence[0]
    assert "no ICMP fragmentation-needed came back (a silent drop)" in f.evidence[1]
    assert "it now carries 1400 bytes" in f.fix


def test_a_route_mtu_is_read_from_the_routes_when_ping_cannot_set_df() -> None:
    """The lab's agent image has busybox's ping (no -M; its real refusal, as the dual-stack lab recorded it):
    the probes say nothing, the route with its mtu is still named from `ip route show`."""
    ev = load("path_route_mtu")
    raw = (RECORDED / "path_route_mtu" / "lab-node-1.txt").read_text()
    head, _, _ = raw.partition("@@nc-section pmtu")
    busybox = "@@nc-section pmtu rc=0\n#nc-pmtu-df off\n#nc-pmtu 192.0.2.12 1500 84\nping: invalid option -- 'M'\n#nc-pmtu-rc 1\n"
    ev.nodes["lab-node-1"] = NodeEvidence.from_output("lab-node-1", head + busybox)
    probe = ev.nodes["lab-node-1"].path_probes["192.0.2.12"]
    assert not probe.df and not probe.reachable
    [f] = findings(ev)
    assert f.fix == "on lab-node-1: ip route replace 192.0.2.12 dev eth0 scope link (the same route without its mtu)"
