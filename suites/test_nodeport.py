"""NodePort: every node's InternalIP:NodePort, from pods on every node and from outside.

Incidents: the NodePort range is dropped by a host firewall on one node; kube-proxy is not running
there; with externalTrafficPolicy=Local, traffic must stay on nodes that have a local endpoint and
keep the client's address. Pods reach eTP=Local NodePorts through kube-proxy's short-circuit to the
cluster-wide chain, so the client-IP and local-endpoint checks are made from the machine running
pytest, which is outside the cluster (they skip, with the reason, when it cannot reach node IPs).
"""

import pytest

from netconform.cluster import NodeInfo
from netconform.dial import (
    NODEPORT_CLUSTER,
    NODEPORT_LOCAL,
    DialResult,
    HostDials,
    SourceView,
    parametrize_destinations,
    parametrize_pairs,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "src" in metafunc.fixturenames:
        parametrize_pairs(metafunc, same_node=None)
    else:
        parametrize_destinations(metafunc)


def test_nodeport_from_pod(src: SourceView, dst: NodeInfo) -> None:
    result = src.result(NODEPORT_CLUSTER + dst.name)
    assert result.ok, result.describe()


def test_nodeport_local_from_pod(src: SourceView, dst: NodeInfo) -> None:
    result = src.result(NODEPORT_LOCAL + dst.name)
    assert result.ok, result.describe()


def from_this_machine(
    host_dials: HostDials, target_id: str, dst: NodeInfo, request: pytest.FixtureRequest
) -> DialResult:
    if dst.name in host_dials.skip:
        pytest.skip(host_dials.skip[dst.name])
    result = next(r for r in host_dials.results[dst.name] if r.target_id == target_id + dst.name)
    request.node.user_properties.append(("netconform_path", result.path_info()))
    return result


def test_nodeport_from_this_machine(host_dials: HostDials, dst: NodeInfo, request: pytest.FixtureRequest) -> None:
    result = from_this_machine(host_dials, NODEPORT_CLUSTER, dst, request)
    assert result.ok, result.describe()


def test_nodeport_local_answers_locally_and_keeps_client_ip(
    host_dials: HostDials, dst: NodeInfo, request: pytest.FixtureRequest
) -> None:
    result = from_this_machine(host_dials, NODEPORT_LOCAL, dst, request)
    assert result.ok, result.describe()
    attempt = result.attempts[0]
    assert attempt.server_node == dst.name, (
        f"{result.path()}: answered by {attempt.server_hostname} on {attempt.server_node}, "
        f"but externalTrafficPolicy=Local must answer from a pod on {dst.name}"
    )
    assert attempt.client_ip_seen == result.source_ip, (
        f"{result.path()}: the server saw {attempt.client_ip_seen}, not this machine's {result.source_ip}: "
        "externalTrafficPolicy=Local must keep the client address"
    )
