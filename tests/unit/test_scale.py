"""What keeps a 1000-node run cheap: plain-JSON lists through the one counting client (node inventory,
the readiness wait), collection without the cyclic garbage collector."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client as k8s

from netconform.errors import ProbeSetupError, UsageError, api_error_sentence
from netconform.kube.connect import get_json, make_api_client, request_counts
from netconform.kube.inventory import list_nodes
from netconform.plugin import collection as collection_plugin
from netconform.workload.labels import HAIRPIN_SERVICE, POLICY, ROLE_LABEL, SERVICES, SINGLE
from netconform.workload.readiness import PodRef, roles_for, wait_ready


class FakeApiServer(BaseHTTPRequestHandler):
    """Answers GET with `answers[path]` = (status, JSON body) and records what was asked."""

    answers: dict[str, tuple[int, Any]] = {}
    asked: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        self.asked.append((path, query))
        status, body = self.answers.get(path, (404, {"kind": "Status", "message": f"{path} not found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[k8s.ApiClient]:
    """A counting client (make_api_client) talking HTTP to FakeApiServer on loopback."""
    FakeApiServer.answers, FakeApiServer.asked = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cfg = k8s.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield make_api_client(cfg)
    finally:
        server.shutdown()
        thread.join(timeout=5)


def node(name: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_get_json_is_one_counted_request_with_the_query(api: k8s.ApiClient) -> None:
    FakeApiServer.answers["/api/v1/nodes"] = (200, {"items": [node("b", "10.0.0.2")]})
    before = request_counts()["api"]
    data = get_json(api, "/api/v1/nodes", {"labelSelector": "pool=blue", "fieldSelector": ""})
    assert data == {"items": [node("b", "10.0.0.2")]}
    assert request_counts()["api"] == before + 1
    assert FakeApiServer.asked == [("/api/v1/nodes", "labelSelector=pool%3Dblue")]  # empty values left out


def test_get_json_raises_the_api_error_with_its_message(api: k8s.ApiClient) -> None:
    message = 'nodes is forbidden: User "alice" cannot list resource "nodes"'
    FakeApiServer.answers["/api/v1/nodes"] = (403, {"kind": "Status", "message": message})
    with pytest.raises(k8s.ApiException) as caught:
        get_json(api, "/api/v1/nodes")
    assert caught.value.status == 403
    assert api_error_sentence(caught.value, "list nodes").startswith(
        f"RBAC forbids netconform to list nodes: {message}"
    )


def test_list_nodes_reads_plain_json_sorted_by_name(api: k8s.ApiClient) -> None:
    FakeApiServer.answers["/api/v1/nodes"] = (
        200,
        {"items": [node("lab-node-2", "10.0.0.2"), node("lab-node-1", "10.0.0.1")]},
    )
    nodes = list_nodes(api)
    assert [(n.name, n.internal_ip, n.pod_cidrs, n.ready) for n in nodes] == [
        ("lab-node-1", "10.0.0.1", ("10.244.1.0/24",), True),
        ("lab-node-2", "10.0.0.2", ("10.244.1.0/24",), True),
    ]


def test_a_bad_selector_is_one_sentence(api: k8s.ApiClient) -> None:
    FakeApiServer.answers["/api/v1/nodes"] = (400, {"kind": "Status", "message": "unable to parse requirement"})
    with pytest.raises(UsageError, match="--node-selector 'pool==' is not a valid label selector"):
        list_nodes(api, "pool==")


def session(active: bool) -> Any:
    from netconform.plugin.session import _ACTIVE

    config = SimpleNamespace(stash={_ACTIVE: active} if active else {})
    return SimpleNamespace(config=config)


def run_wrapper(active: bool, fail: bool = False) -> tuple[bool, bool, int]:
    """Drive the pytest_collection wrapper; (gc enabled during, after, objects frozen by it)."""
    frozen = gc.get_freeze_count()
    hook = collection_plugin.pytest_collection(session(active))  # type: ignore[arg-type]
    next(hook)
    during = gc.isenabled()
    with pytest.raises(StopIteration if not fail else RuntimeError):
        hook.throw(RuntimeError("collection failed")) if fail else hook.send(None)
    try:
        return during, gc.isenabled(), gc.get_freeze_count() - frozen
    finally:
        gc.unfreeze()


def test_collection_runs_without_the_cyclic_collector_and_freezes_what_it_made() -> None:
    assert gc.isenabled()
    during, after, frozen = run_wrapper(active=True)
    assert (during, after) == (False, True) and frozen > 0
    during, after, _ = run_wrapper(active=True, fail=True)
    assert (during, after) == (False, True)  # a failed collection leaves the collector on too


def test_collection_of_other_tests_keeps_the_collector() -> None:
    during, after, frozen = run_wrapper(active=False)
    assert (during, after, frozen) == (True, True, 0)


# ---------------------------------------------------------------- the readiness wait reads plain JSON

NS = "netconform-ab12cd34"
PODS, SLICES, EVENTS = (f"/api/v1/namespaces/{NS}/pods", f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
                        f"/api/v1/namespaces/{NS}/events")  # fmt: skip


def probe_pod(role: str, node: str, ip: str, ready: bool = True, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"nc-{role}-{node}",
            "labels": {ROLE_LABEL: role},
            "creationTimestamp": "2026-11-28T10:00:00Z",
        },
        "spec": {"nodeName": node},
        "status": {
            "phase": "Running" if ready else "Pending",
            "podIP": ip,
            "podIPs": [{"ip": ip}, {"ip": f"fd00::{ip.rsplit('.', 1)[1]}"}] if ip else [],  # none while pending
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **status,
        },
    }


def endpoint_slice(service: str, ips: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{service}-x", "labels": {"kubernetes.io/service-name": service}},
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


def test_wait_ready_lists_pods_and_slices_once_per_poll_as_plain_json(api: k8s.ApiClient) -> None:
    pods = [probe_pod("server", "n1", "10.0.1.2"), probe_pod("server", "n2", "10.0.2.2"),
            probe_pod("client", "n1", "10.0.1.3"), probe_pod("client", "n2", "10.0.2.3"),
            probe_pod(SINGLE["role"], "n1", "10.0.1.4"), probe_pod(POLICY["target_role"], "n1", "10.0.1.5"),
            probe_pod(POLICY["target_role"], "n2", "10.0.2.5"), probe_pod(POLICY["client_role"], "n1", "10.0.1.6")]  # fmt: skip
    servers = ["10.0.1.2", "10.0.2.2", "fd00::2"]
    slices = [endpoint_slice(name, servers) for name in SERVICES.values()]
    slices += [endpoint_slice(HAIRPIN_SERVICE, ["10.0.1.3", "10.0.2.3", "fd00::3"])]
    slices += [endpoint_slice(SINGLE["service"], ["10.0.1.4", "fd00::4"])]
    FakeApiServer.answers = {PODS: (200, {"items": pods}), SLICES: (200, {"items": slices})}
    before = request_counts()["api"]
    got = wait_ready(k8s.CoreV1Api(api), NS, ["n1", "n2"], timeout_s=5, settle_s=0)
    assert request_counts()["api"] - before == 2
    assert FakeApiServer.asked == [(PODS, "labelSelector=netconform.io/role"), (SLICES, "")]
    assert got.pods["server"]["n2"] == PodRef("nc-server-n2", "10.0.2.2", "n2", ("10.0.2.2", "fd00::2"))
    assert set(got.pods["client"]) == {"n1", "n2"} and got.pods[SINGLE["role"]]["n1"].ip_of("ipv6") == "fd00::4"
    assert set(got.pods[POLICY["target_role"]]) == {"n1", "n2"} and set(got.pods[POLICY["client_role"]]) == {"n1"}
    assert got.unusable == {}


def test_without_the_network_policy_check_the_wait_does_not_wait_for_its_pods(api: k8s.ApiClient) -> None:
    """The check deselected: its pods are not deployed, so the wait is done once the probes are."""
    pods = [probe_pod("server", "n1", "10.0.1.2"), probe_pod("client", "n1", "10.0.1.3"),
            probe_pod(SINGLE["role"], "n1", "10.0.1.4")]  # fmt: skip
    slices = [endpoint_slice(name, ["10.0.1.2", "fd00::2"]) for name in SERVICES.values()]
    slices += [endpoint_slice(HAIRPIN_SERVICE, ["10.0.1.3", "fd00::3"])]
    slices += [endpoint_slice(SINGLE["service"], ["10.0.1.4", "fd00::4"])]
    FakeApiServer.answers = {
        PODS: (200, {"items": pods}),
        SLICES: (200, {"items": slices}),
        EVENTS: (200, {"items": []}),
    }
    got = wait_ready(k8s.CoreV1Api(api), NS, ["n1"], timeout_s=5, settle_s=0, roles=roles_for(network_policy=False))
    assert set(got.pods["client"]) == {"n1"} and got.unusable == {}
    assert not got.pods.get(POLICY["target_role"]) and not got.pods.get(POLICY["client_role"])
    with pytest.raises(ProbeSetupError, match=r"no nc-policy-target pod on n1; no nc-policy-client pod on n1$"):
        wait_ready(k8s.CoreV1Api(api), NS, ["n1"], timeout_s=0, settle_s=0, roles=roles_for(network_policy=True))


def test_a_node_whose_probes_never_start_is_left_out_with_the_reason_not_the_run(api: k8s.ApiClient) -> None:
    """A broken CNI on n2: its pods stay ContainerCreating; n1 and n3 are Ready and listed."""
    sandbox = {"containerStatuses": [{"name": "probe", "image": "p", "ready": False, "restartCount": 0,
                                      "state": {"waiting": {"reason": "ContainerCreating"}}}]}  # fmt: skip
    pods = [probe_pod("server", "n1", "10.0.1.2"), probe_pod("client", "n1", "10.0.1.3"),
            probe_pod(SINGLE["role"], "n1", "10.0.1.4"),
            probe_pod("server", "n2", "", ready=False, **sandbox), probe_pod("client", "n2", "", ready=False, **sandbox),
            probe_pod("server", "n3", "10.0.3.2"), probe_pod("client", "n3", "10.0.3.3")]  # fmt: skip
    servers = ["10.0.1.2", "10.0.3.2", "fd00::2"]
    slices = [endpoint_slice(name, servers) for name in SERVICES.values()]
    slices += [endpoint_slice(HAIRPIN_SERVICE, ["10.0.1.3", "10.0.3.3", "fd00::3"])]
    slices += [endpoint_slice(SINGLE["service"], ["10.0.1.4", "fd00::4"])]
    events = [
        {"metadata": {"creationTimestamp": "2026-11-28T10:00:01Z"}, "involvedObject": {"kind": "Pod", "name": name},
         "reason": "FailedCreatePodSandBox", "lastTimestamp": "2026-11-28T10:00:05Z",
         "message": 'plugin type="flannel" failed (add): failed to load flannel \'subnet.env\' file'}
        for name in ("nc-server-n2", "nc-client-n2")
    ]  # fmt: skip
    FakeApiServer.answers = {
        PODS: (200, {"items": pods}),
        SLICES: (200, {"items": slices}),
        EVENTS: (200, {"items": events}),
    }
    got = wait_ready(k8s.CoreV1Api(api), NS, ["n1", "n2", "n3"], timeout_s=0, settle_s=0)
    assert set(got.pods["server"]) == set(got.pods["client"]) == {"n1", "n3"}
    why = "ContainerCreating (FailedCreatePodSandBox: plugin type=\"flannel\" failed (add): failed to load flannel 'subnet.env' file)"
    assert got.unusable == {"n2": f"nc-server-n2 on n2: {why}; nc-client-n2 on n2: {why}"}


def test_no_node_ready_at_all_is_still_one_sentence(api: k8s.ApiClient) -> None:
    pods = [probe_pod("server", "n1", "", ready=False), probe_pod("client", "n1", "", ready=False)]
    FakeApiServer.answers = {PODS: (200, {"items": pods}), SLICES: (200, {"items": []}), EVENTS: (200, {"items": []})}
    with pytest.raises(
        ProbeSetupError,
        match=r"^probes not Ready after 0s: nc-client-n1 on n1, nc-server-n1 on n1: Pending; no nc-server pod on n2",
    ):
        wait_ready(k8s.CoreV1Api(api), NS, ["n1", "n2"], timeout_s=0)


def test_wait_ready_times_out_naming_the_newest_warning(api: k8s.ApiClient) -> None:
    waiting = {"containerStatuses": [{"name": "probe", "image": "p", "ready": False, "restartCount": 0,
                                      "state": {"waiting": {"reason": "ContainerCreating"}}}]}  # fmt: skip
    pods = [probe_pod("server", "n1", "10.0.1.2", ready=False, **waiting), probe_pod("client", "n1", "10.0.1.3")]
    events = [
        {"metadata": {"creationTimestamp": "2026-11-28T10:00:01Z"}, "involvedObject": {"kind": "Pod", "name": "nc-server-n1"},
         "reason": "FailedCreatePodSandBox", "message": "newest", "eventTime": "2026-11-28T10:00:05.250000Z"},
        {"metadata": {"creationTimestamp": "2026-11-28T10:00:01Z"}, "involvedObject": {"kind": "Pod", "name": "nc-server-n1"},
         "reason": "FailedCreatePodSandBox", "message": "older", "lastTimestamp": "2026-11-28T10:00:05Z"},
    ]  # fmt: skip
    FakeApiServer.answers = {PODS: (200, {"items": pods}), EVENTS: (200, {"items": events})}
    with pytest.raises(ProbeSetupError) as caught:
        wait_ready(k8s.CoreV1Api(api), NS, ["n1"], timeout_s=0)
    assert str(caught.value) == (
        "probes not Ready after 0s: nc-server-n1 on n1: ContainerCreating (FailedCreatePodSandBox: newest); "
        "no nc-single pod on n1; no nc-policy-target pod on n1; no nc-policy-client pod on n1"
    )
    assert (EVENTS, "fieldSelector=type%3DWarning") in FakeApiServer.asked
