"""The plan over IP families and the new checks (path MTU, hairpin, eTP=Local silence): target ids,
hosts, sizes, gaps; families from the inventory; test ids; parsing of recorded full-size datagram runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from netconform.dialing import host as host_mod
from netconform.dialing.model import Attempt, DialResult, Source, Target
from netconform.dialing.pairs import choose_pairs
from netconform.dialing.plan import (
    MTU_TRIES,
    hairpin_target,
    mtu_payload,
    mtu_target,
    nodeport_target,
    plan_with_gaps,
    pod_target,
    service_target,
    single_nodeport_target,
    stability_target,
)
from netconform.dialing.probe import parse_output
from netconform.kube.inventory import NodeInfo, cluster_families, family_of
from netconform.plugin import dial as dial_plugin
from netconform.workload.deploy import Deployment, mtu_destinations
from netconform.workload.pod_mtu import mtu_command, parse_route_mtus
from netconform.workload.readiness import PodRef

DATA = Path(__file__).parent / "data"


def dual_node(i: int, v6_ip: bool = True) -> NodeInfo:
    ips = (f"10.99.0.{10 + i}", f"fd99::{10 + i}") if v6_ip else (f"10.99.0.{10 + i}",)
    return NodeInfo(
        f"lab-node-{i}",
        ips[0],
        (f"10.244.{i}.0/24", f"fd10:244:0:{i}::/64"),
        True,
        True,
        internal_ips=ips,
    )


HOST_PART = {"server": 10, "client": 20, "policy-target": 40, "policy-client": 50}


def pod(role: str, i: int, v6: bool = True) -> PodRef:
    v4 = f"10.244.{i}.{HOST_PART[role]}"
    ips = (v4, f"fd10:244:0:{i}::{HOST_PART[role]}") if v6 else (v4,)
    return PodRef(f"nc-{role}-{i}", v4, f"lab-node-{i}", ips)


def dual_deployment(nodes: list[NodeInfo], **changes: Any) -> Deployment:
    dep = Deployment(
        namespace="netconform-ab12cd34",
        servers={n.name: pod("server", int(n.name[-1])) for n in nodes},
        clients={n.name: pod("client", int(n.name[-1])) for n in nodes},
        cluster_ip="10.96.0.50",
        node_port=30080,
        node_port_local=30081,
        kubernetes_ip="10.96.0.1",
        cluster_domain="cluster.local",
        cluster_ips={"ipv4": "10.96.0.50", "ipv6": "fd00:96::50"},
        kubernetes_ips={"ipv4": "10.96.0.1"},
        hairpin_ips={"ipv4": "10.96.0.60", "ipv6": "fd00:96::60"},
        single=PodRef("nc-single-1", "10.244.1.30", "lab-node-1", ("10.244.1.30", "fd10:244:0:1::30")),
        node_port_single=30082,
        pod_mtu=1450,
        policy_targets={n.name: pod("policy-target", int(n.name[-1])) for n in nodes},
        policy_client=pod("policy-client", 1),
    )
    for key, value in changes.items():
        setattr(dep, key, value)
    return dep


NODES = [dual_node(1), dual_node(2), dual_node(3)]


def targets_of(plan: dict[Source, list[Target]], node: str) -> dict[str, Target]:
    return {t.id: t for s, ts in plan.items() if s.node == node for t in ts}


# ---------------------------------------------------------------- families


def test_families_come_from_the_pod_cidrs_else_the_node_ips_else_ipv4() -> None:
    assert cluster_families(NODES) == ["ipv4", "ipv6"]
    v4 = NodeInfo("a", "10.0.0.1", ("10.244.0.0/24",), True, True)
    assert cluster_families([v4]) == ["ipv4"]
    v6_only = NodeInfo("b", "fd00::1", ("fd10::/64",), True, True)
    assert cluster_families([v6_only]) == ["ipv6"]
    no_cidrs = NodeInfo("c", "10.0.0.3", (), True, True, internal_ips=("10.0.0.3", "fd00::3"))
    assert cluster_families([no_cidrs]) == ["ipv4", "ipv6"]
    assert cluster_families([]) == ["ipv4"]
    assert family_of("fd00::1") == "ipv6" and family_of("10.1.0.0/16") == "ipv4" and family_of("None") is None


def test_a_dual_stack_node_keeps_its_first_internal_ip_as_primary() -> None:
    api_node = {
        "metadata": {"name": "lab-node-1"},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd10:244:0:1::/64"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "10.99.0.11"},
                {"type": "InternalIP", "address": "fd99::11"},
                {"type": "Hostname", "address": "lab-node-1"},
            ]
        },
    }
    info = NodeInfo.from_json(api_node)
    assert info.internal_ip == "10.99.0.11" and info.internal_ips == ("10.99.0.11", "fd99::11")
    assert info.ip_of("ipv6") == "fd99::11" and info.families == ("ipv4", "ipv6")
    assert NodeInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


def test_deployment_round_trips_with_every_family() -> None:
    dep = dual_deployment(NODES)
    back = Deployment.from_dict(json.loads(json.dumps(dep.to_dict())))
    assert back == dep
    assert back.servers["lab-node-2"].ip_of("ipv6") == "fd10:244:0:2::10"
    assert back.service_ip("ipv6") == "fd00:96::50" and back.kubernetes_service_ip("ipv6") is None
    assert back.single is not None and back.single.node == "lab-node-1"


# ---------------------------------------------------------------- the plan


def test_every_check_is_planned_once_per_family_with_that_family_s_addresses() -> None:
    plan, gaps = plan_with_gaps(dual_deployment(NODES), NODES, stability_count=20)
    assert not gaps
    from_1 = targets_of(plan, "lab-node-1")
    assert len(from_1) == 2 * (6 * 3 + 2 + 5 + 1 + 5)  # as on one family, twice; still one batch per client
    assert len(plan) == 3
    assert from_1[pod_target("tcp", "lab-node-3", "ipv6")].host == "fd10:244:0:3::10"
    assert from_1[pod_target("tcp", "lab-node-3", "ipv4")].host == "10.244.3.10"
    assert from_1[nodeport_target("lab-node-2", local=True, family="ipv6")].host == "fd99::12"
    assert from_1[service_target("udp", "ipv6")].host == "fd00:96::50"
    assert from_1[stability_target("nodeport", "ipv6")].host == "fd99::12"
    assert from_1[hairpin_target("ipv6")].host == "fd00:96::60"
    assert from_1["dns:headless:ipv6"].spec()["family"] == "6"


def test_full_size_datagrams_fill_the_pod_mtu_of_each_family_across_nodes_only() -> None:
    plan, _ = plan_with_gaps(dual_deployment(NODES), NODES, stability_count=20)
    from_1 = targets_of(plan, "lab-node-1")
    assert mtu_target("ipv4", "lab-node-1") not in from_1  # same node: no overlay to measure
    v4, v6 = from_1[mtu_target("ipv4", "lab-node-2")], from_1[mtu_target("ipv6", "lab-node-2")]
    assert (
        (v4.payload_bytes, v6.payload_bytes) == (1422, 1402) == (mtu_payload(1450, "ipv4"), mtu_payload(1450, "ipv6"))
    )
    assert v4.spec() == {
        "id": "mtu:ipv4:lab-node-2",
        "proto": "udp",
        "host": "10.244.2.10",
        "port": 8081,
        "count": MTU_TRIES,
        "want_backends": 1,  # the first datagram that comes back whole ends it
        "payload_bytes": 1422,
        "df": True,
    }
    through = from_1[mtu_target("ipv6")]
    assert through.host == "fd00:96::50" and through.df and through.payload_bytes == 1402
    assert through.want_backends == 3 and through.count == from_1[service_target("udp", "ipv6")].count


def test_without_a_pod_mtu_no_full_size_datagram_is_planned() -> None:
    plan, _ = plan_with_gaps(dual_deployment(NODES, pod_mtu=0), NODES, stability_count=20)
    assert not any(t.check == "mtu" for ts in plan.values() for t in ts)


def test_hairpin_dials_the_own_service_and_expects_the_own_node() -> None:
    plan, _ = plan_with_gaps(dual_deployment(NODES), NODES, stability_count=20)
    for source, targets in plan.items():
        hairpin = next(t for t in targets if t.id == hairpin_target("ipv4"))
        assert (hairpin.host, hairpin.port, hairpin.check, hairpin.dst_node) == (
            "10.96.0.60",
            8080,
            "hairpin",
            source.node,
        )


def test_paths_without_an_address_of_the_family_are_gaps_with_the_reason() -> None:
    nodes = [dual_node(1), dual_node(2, v6_ip=False), dual_node(3)]
    servers = {n.name: pod("server", int(n.name[-1]), v6=n.name != "lab-node-3") for n in nodes}
    clients = {n.name: pod("client", int(n.name[-1]), v6=n.name != "lab-node-1") for n in nodes}
    dep = dual_deployment(nodes, servers=servers, clients=clients, cluster_ips={"ipv4": "10.96.0.50"})
    plan, gaps = plan_with_gaps(dep, nodes, stability_count=20)
    from_2 = targets_of(plan, "lab-node-2")
    # the server pod without IPv6 though its node has an IPv6 podCIDR: a failure
    gap = gaps[("lab-node-2", pod_target("udp", "lab-node-3", "ipv6"))]
    assert gap.fail and "nc-server-3 (server pod on lab-node-3) has no IPv6 address" in gap.reason
    assert gaps[("lab-node-2", mtu_target("ipv6", "lab-node-3"))] == gap
    # no IPv6 Service range: nothing to check there (skip), and said so
    svc = gaps[("lab-node-2", service_target("tcp", "ipv6"))]
    assert not svc.fail and "got no IPv6 ClusterIP" in svc.reason
    assert ("lab-node-2", mtu_target("ipv6")) in gaps and ("lab-node-2", stability_target("clusterip", "ipv6")) in gaps
    # a node without an IPv6 InternalIP: its NodePort has no IPv6 address
    np = gaps[("lab-node-1", nodeport_target("lab-node-2", family="ipv6"))]
    assert not np.fail and "lab-node-2 has no IPv6 InternalIP" in np.reason
    # a client pod without IPv6: every IPv6 path from it fails, nothing IPv6 is sent from it
    assert not any(":ipv6" in t.id for t in targets_of(plan, "lab-node-1").values())
    assert gaps[("lab-node-1", hairpin_target("ipv6"))].fail
    # what exists is still dialed
    assert from_2[pod_target("tcp", "lab-node-1", "ipv6")].host == "fd10:244:0:1::10"
    assert from_2[hairpin_target("ipv6")].host == "fd00:96::60"


def test_the_pod_mtu_is_the_smallest_route_mtu_toward_the_peers() -> None:
    asked = ["10.244.1.7", "fd10:244:0:2::9", "10.96.0.20"]
    # Cilium: eth0 1500, default route mtu 1450; the ClusterIP goes by the same default route
    assert parse_route_mtus("10.244.1.7 1450\nfd10:244:0:2::9 1500\n10.96.0.20 1450\n", asked) == 1450
    for bad in ("", "10.244.1.7 1450\n", "10.244.1.7 12\nfd10:244:0:2::9 12\n10.96.0.20 12\n", "eth0 1500\n"):
        with pytest.raises(ValueError):
            parse_route_mtus(bad, asked)


def test_the_route_mtu_is_read_toward_other_nodes_servers_and_the_clusterip_only() -> None:
    dep = dual_deployment(NODES, pod_mtu=1450)
    client = dep.clients["lab-node-1"]
    got = mtu_destinations(client, dep.servers, dep.cluster_ips)
    own = set(dep.servers["lab-node-1"].ips)
    assert got and not own & set(got)
    assert set(dep.cluster_ips.values()) <= set(got)
    assert mtu_command(got)[1:] == ["route-mtu", *got]
    for bad in ([], ["10.0.0.1;reboot"], ["-v"]):
        with pytest.raises(ValueError):
            mtu_command(bad)


# ---------------------------------------------------------------- recorded full-size datagrams


def recorded(name: str) -> str:
    return json.dumps(json.loads((DATA / "probe_dial_mtu_netns.json").read_text())[name])


def test_a_black_hole_and_a_small_route_read_from_real_probe_output() -> None:
    import suites.test_mtu as suite

    src = Source("nc-client-a", "10.77.0.1", "node-a")
    full = Target(
        "mtu:ipv4:node-b", "udp", "10.77.0.2", 18081, "mtu", count=3, want_backends=1, payload_bytes=1472, df=True
    )
    small = Target("pod:udp:ipv4:node-b", "udp", "10.77.0.2", 18081, "pod_to_pod")
    hole, ok = parse_output(src, [full, small], recorded("a_to_b_1280_veth"), timeout_ms=500)
    assert ok.ok and not any(a.ok for a in hole.attempts) and len(hole.attempts) == 3
    assert [a.payload_bytes for a in hole.attempts] == [1472] * 3
    assert suite.failure_words(hole) == (
        "no reply within 0.5s (dropped without an ICMP answer: a PMTU black hole) (x3)"
    )
    assert suite.size_words(1500, "ipv4") == "1500-byte IPv4 packets (the pod MTU: 1472-byte UDP payload + 28, DF set)"

    src_b = Source("nc-client-b", "10.77.0.2", "node-b")
    big = Target(
        "mtu:ipv4:node-a", "udp", "10.77.0.1", 18081, "mtu", count=3, want_backends=1, payload_bytes=1472, df=True
    )
    fits = Target(
        "mtu:ipv4:ok", "udp", "10.77.0.1", 18081, "mtu", count=3, want_backends=1, payload_bytes=1252, df=True
    )
    too_big, fitting = parse_output(src_b, [big, fits], recorded("b_to_a_route_1280"), timeout_ms=500)
    assert [a.error for a in too_big.attempts] == ["too_big"] * 3
    assert suite.failure_words(too_big) == "too big for a route MTU of 1280 (x3)"
    assert fitting.stopped == "backends" and len(fitting.attempts) == 1
    assert fitting.attempts[0].ok and fitting.attempts[0].server_bytes == 1252


def test_an_ipv6_endpoint_is_bracketed() -> None:
    r = DialResult("p", "fd10::5", "n", "x", "pod_to_pod", "tcp", "fd10::7", 8080, "m", [Attempt(ok=True)])
    assert r.endpoint == "[fd10::7]:8080" and r.path_info().target == "[fd10::7]:8080"


# ---------------------------------------------------------------- eTP=Local silence from this machine


def test_host_dials_every_family_and_the_single_backend_nodeport(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [dual_node(1), dual_node(2, v6_ip=False)]
    dialed: list[tuple[str, int]] = []

    def fake_dial(ip: str, port: int, timeout_s: float) -> Attempt:
        dialed.append((ip, port))
        return Attempt(ok=True, server_hostname="x", server_node="lab-node-1")

    monkeypatch.setattr(host_mod, "host_dial", fake_dial)
    monkeypatch.setattr(host_mod, "unreachable_reason", lambda ip, t: "cannot reach" if ip == "fd99::11" else None)
    monkeypatch.setattr(host_mod, "local_address_towards", lambda ip: "10.99.0.1")
    dials = host_mod.dial_nodeports_from_host(dual_deployment(nodes), nodes, 0.5)
    ids = {r.target_id: r for rs in dials.results.values() for r in rs}
    assert set(ids) == {
        t for n in ("lab-node-1", "lab-node-2")
        for t in (nodeport_target(n), nodeport_target(n, local=True), single_nodeport_target(n))
    }  # fmt: skip
    single = ids[single_nodeport_target("lab-node-2")]
    assert single.port == 30082 and "its only backend on lab-node-1" in single.dest_label
    assert dials.skip[single_nodeport_target("lab-node-1", "ipv6")] == "cannot reach"
    assert "lab-node-2 has no ipv6 InternalIP" in dials.skip[nodeport_target("lab-node-2", family="ipv6")]
    assert HostDialsRoundTrip(dials)


def HostDialsRoundTrip(dials: host_mod.HostDials) -> bool:
    return host_mod.HostDials.from_dict(json.loads(json.dumps(dials.to_dict()))).skip == dials.skip


# ---------------------------------------------------------------- test ids name the family


class FakeMetafunc:
    def __init__(self, fixturenames: list[str], pairs: str | None = None) -> None:
        self.fixturenames = fixturenames
        self.config = SimpleNamespace()
        mark = SimpleNamespace(args=(pairs,)) if pairs else None
        self.definition = SimpleNamespace(get_closest_marker=lambda name: mark, nodeid="suites/x.py::t")
        self.calls: list[tuple[Any, list[Any]]] = []

    def parametrize(self, argnames: Any, values: list[Any], **kw: Any) -> None:
        self.calls.append((argnames, values))

    def ids(self) -> list[str]:
        return [p.id if hasattr(p, "id") else str(p) for p in self.calls[-1][1]]


@pytest.fixture
def two_families(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [dual_node(1), dual_node(2)]
    monkeypatch.setattr(dial_plugin, "selected_nodes", lambda config: nodes)
    every = choose_pairs([n.name for n in nodes], "all", 1, seed=0)
    monkeypatch.setattr(dial_plugin, "pair_choice", lambda config: every)


@pytest.mark.usefixtures("two_families")
def test_test_ids_start_with_the_family() -> None:
    cross = FakeMetafunc(["src", "dst", "family"], pairs="cross-node")
    dial_plugin.pytest_generate_tests(cross)  # type: ignore[arg-type]
    assert cross.calls[0][0] == ("src", "dst", "family")
    assert cross.ids() == [
        "ipv4-lab-node-1-to-lab-node-2",
        "ipv4-lab-node-2-to-lab-node-1",
        "ipv6-lab-node-1-to-lab-node-2",
        "ipv6-lab-node-2-to-lab-node-1",
    ]
    src = FakeMetafunc(["src", "family"])
    dial_plugin.pytest_generate_tests(src)  # type: ignore[arg-type]
    assert src.ids() == ["ipv4-from-lab-node-1", "ipv4-from-lab-node-2", "ipv6-from-lab-node-1", "ipv6-from-lab-node-2"]
    dst = FakeMetafunc(["dst", "family"])
    dial_plugin.pytest_generate_tests(dst)  # type: ignore[arg-type]
    assert dst.ids()[-1] == "ipv6-to-lab-node-2"
    # a test without a family argument keeps the old ids and arguments
    plain = FakeMetafunc(["src", "dst"], pairs="same-node")
    dial_plugin.pytest_generate_tests(plain)  # type: ignore[arg-type]
    assert plain.calls[0][0] == ("src", "dst") and plain.ids() == [
        "lab-node-1-to-lab-node-1",
        "lab-node-2-to-lab-node-2",
    ]


# ---------------------------------------------------------------- the eTP=Local silence verdict


class FakeHost:
    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt

    def result(self, dst: NodeInfo, target_id: str) -> DialResult:
        return DialResult(
            "runner", "10.99.0.1", "outside the cluster", target_id, "nodeport", "tcp", dst.internal_ip, 30082,
            dst.name, [self.attempt], dest_label=f"NodePort eTP=Local of nc-single-local on {dst.name}", timeout_ms=500,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("dialed", "attempt", "verdict"),
    [
        (2, Attempt(ok=False, error="timeout"), None),
        (2, Attempt(ok=False, error="refused"), None),
        (2, Attempt(ok=True, server_hostname="nc-single-1", server_node="lab-node-1", client_ip_seen="10.244.2.0"),
         "lab-node-2 has no local endpoint, yet it answered from nc-single-1 on lab-node-1 (the server saw 10.244.2.0)"),
        (1, Attempt(ok=True, server_hostname="nc-single-1", server_node="lab-node-1"), None),
        (1, Attempt(ok=False, error="timeout"), "lab-node-1 runs the only backend nc-single-1"),
    ],
)  # fmt: skip
def test_a_node_without_a_local_backend_must_stay_silent(dialed: int, attempt: Attempt, verdict: str | None) -> None:
    import suites.test_nodeport as suite

    check = suite.test_nodeport_local_silent_without_local_backend
    args = (FakeHost(attempt), dual_node(dialed), "ipv4", dual_deployment(NODES))
    if verdict is None:
        check(*args)  # type: ignore[arg-type]
    else:
        with pytest.raises(AssertionError, match=re.escape(verdict)):
            check(*args)  # type: ignore[arg-type]


def test_an_ipv6_path_is_said_to_leave_from_the_pod_s_ipv6_address() -> None:
    out = json.dumps(
        {
            "source": {"hostname": "nc-client-1", "ips": ["10.244.1.20", "fd10:244:0:1::20"]},
            "results": [
                {"id": "a", "attempts": [{"ok": True}]},
                {"id": "b", "attempts": [{"ok": True}]},
            ],
        }
    )
    targets = [
        Target("a", "tcp", "fd10:244:0:2::10", 8080, "pod_to_pod"),
        Target("b", "tcp", "10.244.2.10", 8080, "pod_to_pod"),
    ]
    v6, v4 = parse_output(Source("nc-client-1", "10.244.1.20", "lab-node-1"), targets, out, 500)
    assert (v6.source_ip, v4.source_ip) == ("fd10:244:0:1::20", "10.244.1.20")
    assert v6.path() == "nc-client-1 (fd10:244:0:1::20, lab-node-1) -> [fd10:244:0:2::10]:8080"


# ---------------------------------------------------------------- what the diagnosis takes the new paths for


def test_findings_about_services_and_pod_paths_explain_hairpin_and_full_size_paths() -> None:
    from netconform.diagnose.correlate import explains
    from netconform.diagnose.facts import ClusterFacts, ServiceFacts
    from netconform.diagnose.model import Finding, scope
    from netconform.dialing.path import PathInfo

    facts = ClusterFacts(
        services={
            "ns/nc-hairpin": ServiceFacts("ns", "nc-hairpin", "10.96.0.60"),
            "ns/nc-server": ServiceFacts("ns", "nc-server", "10.96.0.50"),
        }
    )

    def finding(*checks: str) -> Finding:
        return Finding(
            cause="x",
            title="x",
            confidence=0.9,
            node="lab-node-2",
            evidence=(),
            fix="",
            explains=(scope(checks=list(checks), nodes=["lab-node-2"]),),
        )

    hairpin = PathInfo("hairpin", "lab-node-2", "lab-node-2", "10.96.0.60:8080", "timeout")
    through = PathInfo("mtu", "lab-node-2", None, "10.96.0.50:8081", "too_big")
    to_pod = PathInfo("mtu", "lab-node-2", "lab-node-3", "10.244.3.10:8081", "too_big")
    service, pod_to_pod = finding("service"), finding("pod_to_pod")
    assert explains(service, hairpin, facts) and explains(finding("hairpin"), hairpin, facts)
    assert explains(service, through, facts) and not explains(pod_to_pod, through, facts)
    assert explains(pod_to_pod, to_pod, facts) and not explains(service, to_pod, facts)


def test_the_mtu_rule_knows_flannel_s_ipv6_vxlan_device() -> None:
    """Dual-stack flannel: flannel-v6.1 is 70 below the uplink (1430 of 1500) while pods get 1450: the
    IPv6 full-size datagrams fail with route MTU 1430 (seen on the dual lab); the rule must name it."""
    import dataclasses

    from netconform.diagnose.rules import mtu
    from tests.unit.diagnose.conftest import load_case

    ev = load_case("healthy")
    ne = ev.nodes["lab-node-1"]
    v4 = ne.links["flannel.1"]
    ne.links["flannel-v6.1"] = dataclasses.replace(v4, name="flannel-v6.1", mtu=1430)
    assert any(link.master == "cni0" and link.mtu == 1450 for link in ne.links.values())
    (f,) = [f for f in mtu.rule(ev) if f.node == "lab-node-1"]
    assert any("> flannel-v6.1 mtu 1430" in e for e in f.evidence)
    assert "<= 1430" in f.fix
    assert mtu.rule(load_case("healthy")) == []
