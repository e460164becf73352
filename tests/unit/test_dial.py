"""Dial results: parsing real probe output, one-line messages, summaries, retry of transport errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from netconform.dialing.coverage import backend_tries, false_failure_bound
from netconform.dialing.fanout import dial_from
from netconform.dialing.model import Attempt, DialResult, Source, Target, connection_summary, percentile
from netconform.dialing.path import (
    PATH_PROPERTY,
    PathInfo,
    SameHost,
    decode_outcomes,
    encode_outcomes,
    read_paths,
    record_path,
)
from netconform.dialing.plan import (
    build_plan,
    nodeport_target,
    plan_with_gaps,
    pod_target,
    service_target,
    stability_peer,
)
from netconform.dialing.probe import parse_output, worst_case_seconds
from netconform.errors import ProbeRunError
from netconform.kube.inventory import NodeInfo
from netconform.plugin import paths
from netconform.plugin.dns_retries import retried_lookups
from netconform.workload.deploy import Deployment
from netconform.workload.readiness import PodRef

DATA = Path(__file__).parent / "data"
SRC = Source("nc-client-abcde", "10.244.1.5", "lab-node-2")


def loopback() -> str:
    return (DATA / "probe_dial_loopback.json").read_text()


def failures() -> str:
    return (DATA / "probe_dial_netns_failures.json").read_text()


def test_parses_real_loopback_output_per_target() -> None:
    targets = [
        Target("pod:tcp:lab-node-3", "tcp", "127.0.0.1", 18080, "pod_to_pod", count=3, dst_node="lab-node-3"),
        Target("pod:udp:lab-node-3", "udp", "127.0.0.1", 18081, "pod_to_pod", count=2, dst_node="lab-node-3"),
        Target("refused", "tcp", "127.0.0.1", 18099, "pod_to_pod", dst_node="lab-node-1"),
    ]
    tcp, udp, refused = parse_output(SRC, targets, loopback(), timeout_ms=500)
    assert tcp.ok and len(tcp.attempts) == 3
    assert tcp.backends == ["vm"] and tcp.seen_ips == ["127.0.0.1"]
    assert all(a.server_node == "lab-node-3" for a in tcp.attempts)
    assert udp.ok and udp.proto == "udp" and len(udp.attempts) == 2
    assert not refused.ok and refused.failures[0].error == "refused"
    assert refused.describe() == (
        "nc-client-abcde (10.244.1.5, lab-node-2) -> 127.0.0.1:18099 (lab-node-1): connection refused"
    )


def test_timeout_message_is_the_one_line_the_operator_reads() -> None:
    targets = [Target("pod:udp:lab-node-3", "udp", "10.244.2.7", 8081, "pod_to_pod", dst_node="lab-node-3")]
    (result,) = parse_output(SRC, targets, failures(), timeout_ms=2000)
    assert result.failures[0].error == "timeout"
    assert result.describe() == (
        "nc-client-abcde (10.244.1.5, lab-node-2) -> UDP 10.244.2.7:8081 (lab-node-3): timeout after 2s"
    )


def test_dns_failure_keeps_the_resolver_detail() -> None:
    targets = [Target("dns:short", "dns", "nc-server", 0, "dns", dst_label="short name")]
    (result,) = parse_output(SRC, targets, failures(), timeout_ms=500)
    assert not result.ok and result.addresses == []
    assert result.describe().startswith(
        "nc-client-abcde (10.244.1.5, lab-node-2) -> DNS nc-server (short name): DNS lookup failed (resolve: lookup nc-server"
    )


def test_target_missing_from_output_is_a_failure_not_a_pass() -> None:
    (result,) = parse_output(SRC, [Target("nope", "tcp", "10.0.0.1", 80, "pod_to_pod")], loopback(), 500)
    assert not result.ok
    assert "no result for this target" in result.describe()


@pytest.mark.parametrize(
    "stdout, words",
    [
        ("", "output is not JSON: nothing"),
        ("Error from server: container not found", "output is not JSON: Error from server"),
        ('{"source": {}}', "no 'results' list"),
    ],
)
def test_output_that_is_not_the_probes_is_a_transport_error(stdout: str, words: str) -> None:
    with pytest.raises(ProbeRunError, match=words):
        parse_output(SRC, [], stdout, 500)


def many(oks: list[bool], connect: list[float] | None = None) -> DialResult:
    connect = connect or [1.0] * len(oks)
    attempts = [
        Attempt(ok=ok, error="" if ok else "timeout", connect_ms=c, server_hostname="nc-server-a" if ok else "")
        for ok, c in zip(oks, connect, strict=True)
    ]
    return DialResult(
        SRC.pod,
        SRC.ip,
        SRC.node,
        "stability:nodeport",
        "stability",
        "tcp",
        "10.99.0.12",
        30080,
        "lab-node-3",
        attempts,
        dest_label="NodePort of lab-node-3",
        timeout_ms=2000,
    )


def test_many_attempts_are_counted_and_grouped() -> None:
    result = many([True] * 97 + [False] * 3)
    assert result.success_ratio == pytest.approx(0.97)
    assert result.what_went_wrong() == "3/100 attempts failed: timeout after 2s (x3)"


def test_connection_summary_has_ratio_backends_and_percentiles() -> None:
    result = many([True] * 99 + [False], connect=[float(i) for i in range(1, 101)])
    text = connection_summary(result)
    assert text == (
        "nc-client-abcde (10.244.1.5, lab-node-2) -> 10.99.0.12:30080 (NodePort of lab-node-3): 99/100 ok (99.0%), "
        "backends nc-server-a, connect p50 50.00ms p99 99.00ms; 1/100 attempts failed: timeout after 2s"
    )


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([5.0], 99) == 5.0


def test_path_info_is_what_diagnosis_reads() -> None:
    result = many([True, False])
    info = result.path_info()
    assert info.check == "stability" and info.src_node == "lab-node-2" and info.dst_node == "lab-node-3"
    assert info.target == "10.99.0.12:30080" and info.error == "timeout"
    assert result.path_info("source_ip").check == "source_ip"


def test_path_property_has_one_writer_and_one_reader() -> None:
    props: list[tuple[str, object]] = [("other", 1)]
    record_path(props, many([True, False]).path_info())
    props.append((PATH_PROPERTY, json.dumps({"check": "dns", "src_node": "lab-node-1", "unknown_key": 1})))
    paths = read_paths(props)
    assert [p.check for p in paths] == ["stability", "dns"] and paths[0].seen_ip is None
    # JUnit XML writes str(value): the recorded value is JSON, never a Python repr
    assert json.loads(str(props[1][1])) == paths[0].to_dict()


def test_a_path_carries_its_result_and_is_serialized_without_it() -> None:
    result = many([True, False])
    info = result.path_info()
    assert info.result is result
    data = info.to_dict()
    assert "result" not in data
    back = PathInfo.from_value(json.dumps(data))  # the form xdist and JUnit XML carry
    assert back == info and back.result is None and back.to_dict() == data


def test_a_test_reads_its_paths_as_recorded_with_the_results_it_was_handed() -> None:
    item = SimpleNamespace(user_properties=[("other", 1)], stash=pytest.Stash())
    first, second = many([True]), many([True, False])  # the same address: no search could tell them apart
    paths.record(item, first.path_info())
    item.user_properties.append((PATH_PROPERTY, {"check": "dns", "src_node": "lab-node-1"}))  # a test's own dict
    paths.record(item, second.path_info())
    got = paths.recorded(item)
    assert [p.check for p in got] == ["stability", "dns", "stability"]
    assert got[0].result is first and got[1].result is None and got[2].result is second
    assert read_paths(item.user_properties) == got  # the serialized form says the same, for other processes


@pytest.mark.parametrize(
    ("codes", "text"),
    [
        (["ok", "T", "T", "T", "T"], "ok T*4"),
        (["ok"] * 95 + ["T"] * 5, "ok*95 T*5"),
        (["T", "ok", "R"], "T ok R"),
        ([], ""),
    ],
)
def test_outcomes_are_kept_compactly_and_read_back(codes: list[str], text: str) -> None:
    assert encode_outcomes(codes) == text and decode_outcomes(text) == codes


def test_a_path_carries_its_attempts_and_on_failure_the_sources_other_like_dials_to_that_address() -> None:
    stab = many([True, False, False, False, False])
    single = DialResult(SRC.pod, SRC.ip, SRC.node, "np-cluster", "nodeport", "tcp", "10.99.0.12", 30080, "lab-node-3",
                        [Attempt(ok=False, error="timeout")])  # fmt: skip
    local = DialResult(SRC.pod, SRC.ip, SRC.node, "np-local", "nodeport", "tcp", "10.99.0.12", 30081, "lab-node-3",
                       [Attempt(ok=True)])  # fmt: skip
    udp = DialResult(SRC.pod, SRC.ip, SRC.node, "u", "pod_to_pod", "udp", "10.99.0.12", 8081, None,
                     [Attempt(ok=True), Attempt(ok=True)])  # fmt: skip
    big = DialResult(SRC.pod, SRC.ip, SRC.node, "m", "mtu", "tcp", "10.99.0.12", 30080, None,
                     [Attempt(ok=False, error="timeout", payload_bytes=65536)])  # fmt: skip
    elsewhere = DialResult(SRC.pod, SRC.ip, SRC.node, "x", "nodeport", "tcp", "10.99.0.13", 30080, None,
                           [Attempt(ok=True)])  # fmt: skip
    results = [single, stab, local, udp, big, elsewhere]
    info = stab.path_info(None, results)
    # other protocols and request sizes are left out (a full-size transfer is not a small connection)
    assert (info.attempts, info.same_host) == ("ok T*4", "30080: T; 30081: ok")
    assert SameHost.decode_all(info.same_host) == [SameHost(30080, "tcp", ("T",)), SameHost(30081, "tcp", ("ok",))]
    assert SameHost.decode_all("8081/udp: ok*2; junk; 30080: T") == [
        SameHost(8081, "udp", ("ok", "ok")),
        SameHost(30080, "tcp", ("T",)),
    ]
    # a path that passed keeps its attempts only, and no empty key grows the record
    ok = local.path_info(None, results)
    assert (ok.attempts, ok.same_host) == ("ok", "")
    assert "same_host" not in ok.to_dict() and ok.to_dict()["attempts"] == "ok"
    props: list[tuple[str, object]] = []
    record_path(props, info)
    (back,) = read_paths(props)
    assert back == info


def test_round_trips_through_json_for_xdist_workers() -> None:
    result = many([True, False])
    assert DialResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_to_dict_is_what_asdict_gives_and_shares_no_list() -> None:
    result = many([True, False])
    result.addresses = ["10.96.0.1"]
    data = result.to_dict()
    assert data == dataclasses.asdict(result)
    assert list(data) == [f.name for f in dataclasses.fields(DialResult)]  # same key order: same JSON
    data["attempts"][0]["ok"] = False
    data["addresses"].append("x")
    assert result.attempts[0].ok and result.addresses == ["10.96.0.1"]


# ---------------------------------------------------------------- retry of transport errors


def flaky(failures_first: int, stdout: str):
    calls = []

    def run_exec(configuration, namespace, pod, spec, wait_s):
        calls.append(pod)
        if len(calls) <= failures_first:
            raise ProbeRunError("exec failed: Handshake status 500")
        return stdout

    return run_exec, calls


def test_transport_error_is_retried_once() -> None:
    run_exec, calls = flaky(1, loopback())
    targets = [Target("pod:tcp:lab-node-3", "tcp", "127.0.0.1", 18080, "pod_to_pod", count=3)]
    outcome = dial_from(None, "ns", SRC, targets, 500, runner=run_exec)
    assert outcome.error is None and outcome.tries == 2 and len(calls) == 2
    assert outcome.results[0].ok


def test_transport_error_twice_is_reported_not_judged() -> None:
    run_exec, calls = flaky(2, loopback())
    outcome = dial_from(None, "ns", SRC, [], 500, runner=run_exec)
    assert outcome.error == "exec failed: Handshake status 500" and outcome.results == [] and len(calls) == 2


def test_bad_output_is_retried_too() -> None:
    calls = []

    def run_exec(*args):
        calls.append(1)
        return "OCI runtime exec failed"

    outcome = dial_from(None, "ns", SRC, [], 500, runner=run_exec)
    assert outcome.error.startswith("output is not JSON") and len(calls) == 2


# ---------------------------------------------------------------- the plan


def node(i: int) -> NodeInfo:
    return NodeInfo(f"lab-node-{i}", f"10.99.0.{10 + i}", (f"10.244.{i}.0/24",), True, True)


def deployment(nodes: list[NodeInfo]) -> Deployment:
    return Deployment(
        namespace="netconform-ab12cd34",
        servers={n.name: PodRef(f"nc-server-{n.name[-1]}", f"10.244.{n.name[-1]}.10", n.name) for n in nodes},
        clients={n.name: PodRef(f"nc-client-{n.name[-1]}", f"10.244.{n.name[-1]}.20", n.name) for n in nodes},
        cluster_ip="10.96.0.50",
        node_port=30080,
        node_port_local=30081,
        kubernetes_ip="10.96.0.1",
        cluster_domain="cluster.local",
        hairpin_ips={"ipv4": "10.96.0.60"},
        pod_mtu=1450,
    )


def test_plan_is_one_batch_per_client_and_grows_linearly_per_client() -> None:
    nodes = [node(1), node(2), node(3)]
    plan = build_plan(deployment(nodes), nodes, stability_count=100)
    assert [s.node for s in plan] == ["lab-node-1", "lab-node-2", "lab-node-3"]
    for targets in plan.values():
        ids = [t.id for t in targets]
        # per destination 4 (pod tcp/udp, 2 NodePorts) + 2 cross-node MTU; 5 many-attempt; hairpin; 5 DNS
        assert len(ids) == len(set(ids)) == 4 * 3 + 2 + 5 + 1 + 5
    first = plan[Source("nc-client-1", "10.244.1.20", "lab-node-1")]
    by_id = {t.id: t for t in first}
    assert by_id[pod_target("tcp", "lab-node-3")].host == "10.244.3.10"
    assert by_id[pod_target("udp", "lab-node-3")].port == 8081
    service = by_id[service_target("tcp")]
    # per source: TCP, UDP and full-size UDP through the Service
    assert service.want_backends == 3 and service.count == backend_tries(3, checks=9) == 60
    assert service.spec()["want_backends"] == 3 and "df" not in service.spec()
    assert by_id["stability:nodeport:ipv4"].host == "10.99.0.12" and by_id["stability:nodeport:ipv4"].count == 100
    assert by_id["dns:fqdn:ipv4"].host == "nc-server.netconform-ab12cd34.svc.cluster.local"
    assert by_id["dns:fqdn:ipv4"].spec()["family"] == "4"


def test_a_node_whose_probes_never_started_fails_its_paths_with_the_reason_and_the_rest_are_planned() -> None:
    nodes = [node(1), node(2), node(3)]
    dep = deployment(nodes)
    del dep.servers["lab-node-2"], dep.clients["lab-node-2"]
    dep.unusable = {"lab-node-2": "nc-server-x on lab-node-2: ContainerCreating (FailedCreatePodSandBox: cni)"}
    plan, gaps = plan_with_gaps(dep, nodes, stability_count=100)
    assert [s.node for s in plan] == ["lab-node-1", "lab-node-3"]  # no client there: no dial from it
    why = "the probe pods on lab-node-2 never became Ready: nc-server-x on lab-node-2: ContainerCreating"
    for tid in (
        pod_target("tcp", "lab-node-2"),
        nodeport_target("lab-node-2"),
        nodeport_target("lab-node-2", local=True),
    ):
        gap = gaps[("lab-node-1", tid)]
        assert gap.fail and gap.reason.startswith(why)
    first = {t.id: t for t in plan[Source("nc-client-1", "10.244.1.20", "lab-node-1")]}
    assert first["stability:nodeport:ipv4"].host == "10.99.0.13"  # the ring skips the node without probes
    assert first[service_target("tcp")].want_backends == 2


def test_stability_ring_gives_every_node_one_remote_client() -> None:
    nodes = [node(1), node(2), node(3)]
    assert [stability_peer(nodes, n).name for n in nodes] == ["lab-node-2", "lab-node-3", "lab-node-1"]
    assert stability_peer([node(1)], node(1)).name == "lab-node-1"


def test_exec_wait_is_bounded_by_the_worst_case() -> None:
    targets = [Target("a", "tcp", "h", 1, "stability", count=100), Target("b", "tcp", "h", 1, "pod_to_pod")]
    assert worst_case_seconds(targets, 2000) == pytest.approx(200 + 202 / 64)


@pytest.mark.parametrize("backends", [2, 3, 12, 100, 1000])
def test_backend_bound_keeps_a_whole_run_below_one_in_a_billion(backends: int) -> None:
    checks = 2 * backends
    tries = backend_tries(backends, checks)
    assert false_failure_bound(backends, tries, checks) <= 1e-9 < false_failure_bound(backends, tries - 1, checks)


def test_one_backend_needs_no_luck() -> None:
    assert backend_tries(1, checks=2) == 3 and false_failure_bound(1, 3) == 0.0


def dns_retry_results() -> list[DialResult]:
    targets = [
        Target(tid, "dns", host, 0, "dns", count=3, dst_label=tid)
        for tid, host in [
            ("dns:retried", "nc-server.drop.svc.cluster.local."),
            ("dns:answered", "nc-server.ok.svc.cluster.local."),
            ("dns:nxdomain", "nxname.ok.svc.cluster.local."),
        ]
    ]
    return parse_output(SRC, targets, (DATA / "probe_dial_dns_retry.json").read_text(), timeout_ms=500)


def test_a_lookup_answered_on_the_retry_passes_and_keeps_the_lost_one() -> None:
    retried, answered, nxdomain = dns_retry_results()
    assert retried.ok and retried.addresses == ["10.96.0.10"] and retried.stopped == "answered"
    assert [a.ok for a in retried.attempts] == [False, True] and retried.failures[0].error == "dns"
    path = retried.path_info()
    assert path.error is None and path.attempts == "D ok"  # a passed path, its lost lookup kept
    assert answered.ok and len(answered.attempts) == 1
    assert not nxdomain.ok and len(nxdomain.attempts) == 1 and "no such host" in nxdomain.describe()
    assert nxdomain.path_info().error == "dns"


def test_three_unanswered_lookups_fail() -> None:
    retried, _, _ = dns_retry_results()
    lost = dataclasses.replace(retried.attempts[0])
    unanswered = dataclasses.replace(retried, attempts=[lost, lost, lost])
    assert not unanswered.ok and unanswered.path_info().error == "dns"
    assert "3/3 attempts failed: DNS lookup failed (resolve: lookup nc-server.drop" in unanswered.describe()


def test_the_summary_names_lookups_that_passed_only_on_a_retry() -> None:
    retried, answered, _ = dns_retry_results()
    reports = []
    for result in (retried, answered):
        report = SimpleNamespace(user_properties=[])
        record_path(report.user_properties, result.path_info())
        reports.append(report)
    assert retried_lookups(reports) == ["nc-client-abcde (lab-node-2) -> nc-server.drop.svc.cluster.local."]
