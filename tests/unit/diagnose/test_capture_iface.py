"""The pod's host-side interface, from RECORDED answers (tests/data/recorded/capture/netns_flannel, see
tests/data/recorded/README.md): `ip -o route get <pod IP>` and `ip -o link show` on the pod's node, the pod's
own /sys/class/net/eth0/iflink, in network namespaces built the way a flannel node is (record-netns.sh:
eth0 a veth to the other node, flannel.1, the bridge cni0, one veth per pod). The Calico- and Cilium-style
route answers are CRAFTED (no such cluster here): a line each in iproute2's format, said where used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netconform.diagnose.capture_iface import (
    IfaceNotFound,
    find_host_side,
    parse_iflink,
    parse_links,
    route_dev,
    valid_ifname,
)

from .conftest import RECORDED

LAB = RECORDED / "capture" / "netns_flannel"


def read(name: str) -> str:
    return (LAB / name).read_text()


def pods() -> list[tuple[str, str, str]]:
    """(pod, node, pod IP) of every probe pod the recording read."""
    return [tuple(line.split()) for line in read("podmap.txt").splitlines() if line.strip()]  # type: ignore[misc]


def node_answers(node: str, ip: str, route: str | None = None) -> Callable[[str], str]:
    """The node's recorded answer to each command find_host_side runs; anything else is a test error."""

    def run(command: str) -> str:
        if command == "ip -o link show":
            return read(f"links-{node}.txt")
        if command == f"ip -o route get {ip}":
            return route if route is not None else read(f"route-{node}-{ip}.txt")
        raise AssertionError(f"unexpected command {command!r}")

    return run


@pytest.mark.parametrize("pod, node, ip", pods(), ids=[p[0] for p in pods()])
def test_on_flannel_the_route_names_the_bridge_and_the_pods_iflink_names_its_veth(pod: str, node: str, ip: str) -> None:
    assert route_dev(read(f"route-{node}-{ip}.txt")) == "cni0"
    index = parse_iflink(read(f"iflink-{pod}.txt"))
    side = find_host_side(ip, node_answers(node, ip), lambda: read(f"iflink-{pod}.txt"))
    assert side.name.startswith("veth") and parse_links(read(f"links-{node}.txt"))[index or 0].name == side.name
    assert side.how == (
        f"the veth peer of the pod's eth0 (iflink {index}); the route names cni0, whose peer is not in a pod's "
        "network namespace (a bridge or the CNI's own device)"
    )


def test_the_recorded_link_table_is_parsed_whole() -> None:
    pod, node, ip = pods()[0]
    text = read(f"links-{node}.txt")
    links = parse_links(text)
    assert len(links) == sum(1 for line in text.splitlines() if line.strip())
    assert {"lo", "eth0", "cni0", "flannel.1"} <= {link.name for link in links.values()}
    # the pods' veths, and eth0 (a veth to the other node here, as a lab or kind node's uplink is)
    assert {link.name for link in links.values() if link.peer_elsewhere} == {
        n for n in (link.name for link in links.values()) if n.startswith("veth") or n == "eth0"
    }


def test_a_route_naming_the_pods_own_interface_is_taken_without_asking_the_pod() -> None:
    """Calico's answer, CRAFTED: `<pod IP> dev cali... src ... uid 0 cache`, here naming the recorded veth (a
    link into a pod's namespace, as a cali* device is)."""
    pod, node, ip = pods()[0]
    veth = parse_links(read(f"links-{node}.txt"))[parse_iflink(read(f"iflink-{pod}.txt")) or 0].name
    route = f"{ip} dev {veth} src 10.99.0.11 uid 0 \\    cache \n"

    def no_exec() -> str:
        raise AssertionError("the pod was asked though the route named its interface")

    side = find_host_side(ip, node_answers(node, ip, route), no_exec)
    assert side.name == veth
    assert side.how == f"`ip route get {ip}` names it, and its peer is in another network namespace"


def test_a_calico_device_line_and_route() -> None:
    """CRAFTED Calico lines: a cali* veth into the pod's namespace, named by the /32 route."""
    links = "12: cali1a2b3c4d5e6@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP mode DEFAULT "
    links += "group default \\    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff link-netnsid 2\n"
    route = "192.168.1.5 dev cali1a2b3c4d5e6 src 10.99.0.11 uid 0 \\    cache \n"
    side = find_host_side("192.168.1.5", lambda c: links if "link" in c else route, lambda: "99\n")
    assert side.name == "cali1a2b3c4d5e6"


def test_a_route_through_a_gateway_out_of_a_veth_uplink_is_not_the_pods_interface() -> None:
    """CRAFTED route: a pod IP routed by default via the node's eth0, itself a veth (as recorded here): the
    pod's iflink decides, not the route."""
    pod, node, ip = pods()[0]
    route = f"{ip} via 10.99.0.1 dev eth0 src 10.99.0.11 uid 0 \\    cache \n"
    side = find_host_side(ip, node_answers(node, ip, route), lambda: read(f"iflink-{pod}.txt"))
    assert side.name.startswith("veth") and "the route names eth0 through a gateway" in side.how


def test_cilium_host_is_not_the_pods_interface() -> None:
    """CRAFTED Cilium lines: the route names cilium_host (a veth whose peer cilium_net is on the node), so the
    pod's iflink decides: lxc* into the pod's namespace."""
    links = (
        "4: cilium_net@cilium_host: <BROADCAST,MULTICAST,NOARP,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n"
        "5: cilium_host@cilium_net: <BROADCAST,MULTICAST,NOARP,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n"
        "9: lxc0f1e2d3c4b5a@if8: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT "
        "group default \\    link/ether 02:00:00:00:00:09 brd ff:ff:ff:ff:ff:ff link-netns cni-5e1f\n"
    )
    route = "10.0.1.23 dev cilium_host src 10.0.1.1 uid 0 \\    cache \n"
    side = find_host_side("10.0.1.23", lambda c: links if "link" in c else route, lambda: "9\n")
    assert side.name == "lxc0f1e2d3c4b5a" and "the route names cilium_host" in side.how


@pytest.mark.parametrize(
    "iflink, why",
    [
        ("", "gave no ifindex"),
        ("-3\n", "gave no ifindex"),
        ("999\n", "no link on the node has ifindex 999"),
        ("2\n", "is not a veth into a pod"),  # a recorded non-veth ifindex (see the test body)
    ],
)
def test_when_the_peer_cannot_be_found_one_sentence_says_why(iflink: str, why: str) -> None:
    pod, node, ip = pods()[0]
    links = parse_links(read(f"links-{node}.txt"))
    answer = iflink
    if iflink == "2\n":  # the first link that is not a veth into another namespace (lo, cni0, flannel.1)
        answer = f"{next(i for i, link in links.items() if not (link.peer_elsewhere or link.kind_hint))}\n"
    with pytest.raises(IfaceNotFound, match=why):
        find_host_side(ip, node_answers(node, ip), lambda: answer)


@pytest.mark.parametrize(
    "name", ["-i", "eth0 ; rm -rf /", "a/b", "x" * 16, "", "veth$(id)", "cni0\n", "flan nel", "ifc:1"]
)
def test_names_that_never_reach_tcpdump(name: str) -> None:
    assert not valid_ifname(name)
    dev = route_dev(f"10.244.1.5 dev {name} src 10.244.1.1")
    assert dev is None or valid_ifname(dev)  # a name's first word at most, and only a valid one


def test_valid_names() -> None:
    assert all(valid_ifname(n) for n in ("cni0", "flannel.1", "flannel-v6.1", "cali1a2b3c4d5e6", "lxc0f1e2d3c4b5a"))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_route_answer(text: str) -> None:
    """Issue 18 #5: a node's `ip route get` answer of any shape: a valid name or None, never an exception."""
    dev = route_dev(text)
    assert dev is None or valid_ifname(dev)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=600))
def test_fuzz_link_table(text: str) -> None:
    """Issue 18 #5: `ip -o link show` of any shape: only valid names and ifindexes come out."""
    for index, link in parse_links(text).items():
        assert 0 < index < 2**31 and valid_ifname(link.name) and link.index == index


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80) | st.integers().map(str))
def test_fuzz_iflink(text: str) -> None:
    """Issue 18 #5: the pod's iflink file of any content: an ifindex in range or None."""
    index = parse_iflink(text)
    assert index is None or 0 < index < 2**31


def test_a_huge_answer_is_read_bounded(tmp_path: Path) -> None:
    big = "7: veth1@if2: <UP> link-netns x\n" * 100_000
    assert len(parse_links(big)) == 1  # one index, read from at most MAX_LINES lines


def test_the_labs_veth_line_without_a_netnsid_is_a_pods_interface() -> None:
    """REAL, the flannel lab (2026-12-03, lab-node-1's agent, the run's --diagnose-record `link` section): the
    first line of the client pod's veth and of cni0. A veth line as the capture read it there carried no
    link-netnsid, so `name@ifN` (a peer in another namespace) is what tells a pod's interface."""
    text = (
        "4: cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP mode DEFAULT group default qlen 1000\n"
        "15: veth547bdb17@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue master cni0 state UP mode "
        "DEFAULT group default \n"
    )
    links = parse_links(text)
    assert links[15].name == "veth547bdb17" and links[15].peer_elsewhere and not links[4].peer_elsewhere
    route = "10.244.0.12 dev cni0 src 10.244.0.1 uid 0 \n"
    side = find_host_side("10.244.0.12", lambda c: text if "link" in c else route, lambda: "15\n")
    assert side.name == "veth547bdb17" and side.how.startswith("the veth peer of the pod's eth0 (iflink 15)")


def test_busyboxs_link_line_names_the_pods_veth_by_the_pods_iflink() -> None:
    """REAL, the flannel lab (2026-12-03, `ip netns exec nclab-node-1 busybox ip -o link show`, what the lab's
    agent runs): busybox resolves the veth's peer ifindex (2, in the pod) against the node's own links and
    prints `@eth0`, with no link-netnsid. The pod's iflink naming that ifindex is what tells its veth."""
    text = (
        "2: eth0@cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue qlen 1000\\    link/ether "
        "1a:7c:6f:76:ce:18 brd ff:ff:ff:ff:ff:ff\n"
        "4: cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue qlen 1000\\    link/ether 0e:18:df:a9:2c:b9 "
        "brd ff:ff:ff:ff:ff:ff\n"
        "109: veth7923c1ba@eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue master cni0 \\    link/ether "
        "2a:e3:2d:69:41:d9 brd ff:ff:ff:ff:ff:ff\n"
    )
    route = "10.244.0.110 dev cni0 src 10.244.0.1 \n"
    side = find_host_side("10.244.0.110", lambda c: text if "link" in c else route, lambda: "109\n")
    assert side.name == "veth7923c1ba" and side.how.startswith("the veth peer of the pod's eth0 (iflink 109)")
    with pytest.raises(IfaceNotFound, match=r"ifindex 4 \(cni0\) is not a veth into a pod"):
        find_host_side("10.244.0.110", lambda c: text if "link" in c else route, lambda: "4\n")
