"""The wait for kube-proxy (netconform.dialing.settle): what each client pod must see, rounds until
every Service answered from all its endpoints, the bound, and what is said when it is reached."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client as k8s

from netconform.dialing import settle
from netconform.dialing.settle import Settled, settle_wants, wait_programmed
from netconform.kube.exec import ExecError
from netconform.kube.inventory import NodeInfo
from netconform.workload.deploy import Deployment
from netconform.workload.labels import HAIRPIN_SERVICE, SERVICES, SINGLE
from netconform.workload.readiness import PodRef

NODES = ["lab-node-1", "lab-node-2", "lab-node-3"]


def dep(families: tuple[str, ...] = ("ipv4",)) -> Deployment:
    def ref(role: str, i: int) -> PodRef:
        v4 = f"10.244.{i}.{10 if role == 'server' else 20}"
        return PodRef(
            f"nc-{role}-{i}", v4, f"lab-node-{i}", (v4, f"fd10:244:0:{i}::9") if "ipv6" in families else (v4,)
        )

    def ips(last: int) -> dict[str, str]:
        out = {"ipv4": f"10.96.0.{last}", "ipv6": f"fd00:96::{last}"}
        return {f: ip for f, ip in out.items() if f in families}

    names = [*SERVICES.values(), HAIRPIN_SERVICE, SINGLE["service"]]
    service_ips = {name: ips(50 + i) for i, name in enumerate(names) if name != SERVICES["headless"]}
    return Deployment(
        namespace="netconform-ab12cd34",
        servers={n: ref("server", i) for i, n in enumerate(NODES, 1)},
        clients={n: ref("client", i) for i, n in enumerate(NODES, 1)},
        cluster_ip="10.96.0.50",
        node_port=30080,
        node_port_local=30081,
        kubernetes_ip="10.96.0.1",
        cluster_domain="cluster.local",
        single=PodRef("nc-single-1", "10.244.1.30", "lab-node-1"),
        service_ips=service_ips,
    )


def test_every_client_must_see_all_servers_the_single_pod_and_itself_through_each_service() -> None:
    wants = settle_wants(dep(), ["ipv4"])
    assert sorted(wants) == NODES
    by_id = {w.id: w for w in wants["lab-node-2"]}
    assert by_id[f"{SERVICES['clusterip']}:tcp:ipv4"].backends == 3
    assert by_id[f"{SERVICES['clusterip']}:udp:ipv4"].backends == 3  # the UDP port is dialed too
    assert by_id[f"{SERVICES['nodeport']}:tcp:ipv4"].backends == 3
    assert by_id[f"{SERVICES['nodeport_local']}:tcp:ipv4"].backends == 3  # its ClusterIP: every server
    assert by_id[f"{HAIRPIN_SERVICE}:tcp:ipv4"].backends == 1  # internalTrafficPolicy Local: the pod itself
    assert by_id[f"{SINGLE['service']}:tcp:ipv4"].backends == 1
    assert not any(SERVICES["headless"] in i for i in by_id)  # no ClusterIP: nothing for kube-proxy to program
    spec = by_id[f"{SERVICES['clusterip']}:tcp:ipv4"].spec()
    assert spec["want_backends"] == 3 and spec["max_failures"] == settle.ROUND_MAX_FAILURES
    assert int(spec["count"]) >= 3 * 3  # type: ignore[call-overload]


def test_on_a_big_cluster_a_client_waits_for_twenty_distinct_servers_not_all() -> None:
    d = dep()
    for i in range(4, 1001):  # 1000 servers; the clients stay three
        d.servers[f"sim-node-{i}"] = PodRef(f"nc-server-{i}", f"10.245.{i // 250}.{i % 250}", f"sim-node-{i}")
    by_id = {w.id: w for w in settle_wants(d, ["ipv4"])["lab-node-1"]}
    want = by_id[f"{SERVICES['clusterip']}:tcp:ipv4"]
    assert want.backends == settle.CONFIRM_BACKENDS_MAX == 20
    assert int(want.spec()["count"]) == 6 * 20  # type: ignore[call-overload]
    assert by_id[f"{HAIRPIN_SERVICE}:tcp:ipv4"].backends == 1


def test_each_family_is_waited_for_and_a_pod_without_an_address_of_it_dials_nothing_of_it() -> None:
    d = dep(("ipv4", "ipv6"))
    wants = settle_wants(d, ["ipv4", "ipv6"])
    assert {w.ip for w in wants["lab-node-1"]} >= {"10.96.0.50", "fd00:96::50"}
    d.clients["lab-node-3"] = PodRef("nc-client-3", "10.244.3.20", "lab-node-3", ("10.244.3.20",))
    assert all(":" not in w.ip for w in settle_wants(d, ["ipv4", "ipv6"])["lab-node-3"])


def node_infos(families: tuple[str, ...] = ("ipv4",)) -> dict[str, NodeInfo]:
    def info(i: int) -> NodeInfo:
        ips = tuple(ip for f, ip in (("ipv4", f"10.99.0.{i}"), ("ipv6", f"fd10:99::{i}")) if f in families)
        return NodeInfo(f"lab-node-{i}", ips[0], (f"10.244.{i}.0/24",), True, True, internal_ips=ips)

    return {f"lab-node-{i}": info(i) for i in range(1, 4)}


def test_each_client_confirms_its_own_node_s_nodeports_the_single_one_only_where_its_pod_runs() -> None:
    """Where the CNI balances ClusterIPs itself (Cilium's BPF), only the NodePorts show kube-proxy's sync."""
    d = dep()
    d.node_port_single = 30082
    wants = settle_wants(d, ["ipv4"], node_infos())
    on_2 = {w.id: w for w in wants["lab-node-2"] if w.id.startswith("nodeport")}
    assert {w.ip for w in on_2.values()} == {"10.99.0.2"}  # its own node, not a peer's
    assert on_2["nodeport:tcp:ipv4"].port == 30080 and on_2["nodeport:tcp:ipv4"].backends == 3
    assert on_2["nodeport-local:tcp:ipv4"].port == 30081 and on_2["nodeport-local:tcp:ipv4"].backends == 1
    assert "nodeport-single:tcp:ipv4" not in on_2  # nc-single runs on lab-node-1
    on_1 = {w.id: w for w in wants["lab-node-1"]}
    assert on_1["nodeport-single:tcp:ipv4"].port == 30082 and on_1["nodeport-single:tcp:ipv4"].ip == "10.99.0.1"
    assert not any(w.id.startswith("nodeport") for w in settle_wants(d, ["ipv4"])["lab-node-1"])  # no nodes given


def test_a_dual_stack_node_s_nodeports_are_confirmed_in_each_family() -> None:
    d = dep(("ipv4", "ipv6"))
    ips = {w.ip for w in settle_wants(d, ["ipv4", "ipv6"], node_infos(("ipv4", "ipv6")))["lab-node-3"]}
    assert {"10.99.0.3", "fd10:99::3"} <= ips


class FakeCluster:
    """kube-proxy on each node programs the run's Services after `ready_after` rounds (None: never)."""

    def __init__(self, ready_after: dict[str, int | None], fail_exec: set[str] | None = None) -> None:
        self.ready_after, self.fail_exec = ready_after, fail_exec or set()
        self.calls: dict[str, int] = {}
        self.specs: list[dict[str, Any]] = []

    def __call__(self, _cfg: k8s.Configuration, _ns: str, pod: str, spec_json: str, wait_s: float) -> str:
        node = f"lab-node-{pod[-1]}"
        self.calls[node] = self.calls.get(node, 0) + 1
        spec = json.loads(spec_json)
        self.specs.append(spec)
        assert wait_s > 0 and spec["timeout_ms"] == settle.ATTEMPT_TIMEOUT_MS
        if node in self.fail_exec:
            raise ExecError(f"exec into {pod} failed: 500 boom")
        after = self.ready_after[node]
        done = after is not None and self.calls[node] >= after
        results = [
            {"id": t["id"], "stopped": "backends" if done else "max_failures", "attempts": []} for t in spec["targets"]
        ]
        return json.dumps({"results": results})


def test_rounds_go_on_until_every_pod_saw_every_service_and_confirmed_ones_are_not_dialed_again() -> None:
    fake = FakeCluster({"lab-node-1": 1, "lab-node-2": 3, "lab-node-3": 2})
    got = wait_programmed(k8s.Configuration(), dep(), ["ipv4"], runner=fake)
    assert got.rounds == 3 and not got.unconfirmed and got.note() == ""
    assert fake.calls == {"lab-node-1": 1, "lab-node-2": 3, "lab-node-3": 2}
    assert got.execs == 6


def test_the_wait_is_bounded_and_says_which_services_were_not_confirmed_where() -> None:
    fake = FakeCluster({"lab-node-1": 1, "lab-node-2": None, "lab-node-3": 1})
    got = wait_programmed(k8s.Configuration(), dep(), ["ipv4"], max_s=0.5, runner=fake)
    assert list(got.unconfirmed) == ["lab-node-2"] and got.seconds >= 0.5
    note = got.note()
    assert "not every Service answered from all its endpoints" in note and "going on with the checks" in note
    assert "lab-node-2: " in note and f"{HAIRPIN_SERVICE} 10.96.0." in note and "lab-node-1" not in note


def test_an_exec_that_fails_confirms_nothing_and_is_bounded_too() -> None:
    fake = FakeCluster({n: 1 for n in NODES}, fail_exec={"lab-node-3"})
    got = wait_programmed(k8s.Configuration(), dep(), ["ipv4"], max_s=0.3, runner=fake)
    assert list(got.unconfirmed) == ["lab-node-3"] and fake.calls["lab-node-1"] == 1


def test_nothing_to_wait_for_is_no_round() -> None:
    empty = dep()
    empty.service_ips = {}
    assert wait_programmed(k8s.Configuration(), empty, ["ipv4"], runner=FakeCluster({})) == Settled()
