"""Source IP: the server sees the client pod's own address.

Incident: dockerd's --ip-masq rule (`-s <podCIDR> ! -o docker0 -j MASQUERADE`, or `! -o cni0`)
SNATs pod traffic that leaves the node, so servers see the client node's flannel.1 address (x.x.x.0)
instead of the pod IP, but only across nodes. Network policies and audit logs then go wrong.
Checked pod -> pod on the same node and across nodes, and pod -> ClusterIP -> pod.
"""

import pytest

from netconform.cluster import Cluster, NodeInfo
from netconform.dial import POD_TCP, SERVICE_TCP, DialResult, SourceView, parametrize_pairs, parametrize_sources


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dst" in metafunc.fixturenames:
        parametrize_pairs(metafunc, same_node=metafunc.function.__name__.startswith("test_same_node"))
    else:
        parametrize_sources(metafunc)


def assert_server_saw_pod_ip(result: DialResult, cluster: Cluster) -> None:
    if not any(a.ok for a in result.attempts):
        pytest.skip(f"no answer to read the source IP from: {result.describe()} (see the reachability tests)")
    wrong = [ip for ip in result.seen_ips if ip != result.source_ip]
    assert not wrong, f"{result.path()}: " + "; ".join(
        f"server saw {ip} instead of {result.source_ip}, which is {cluster.owner_of(ip) or 'no node address netconform knows'}"
        for ip in wrong
    )


def test_same_node_server_sees_client_pod_ip(src: SourceView, dst: NodeInfo, cluster: Cluster) -> None:
    assert_server_saw_pod_ip(src.result(POD_TCP + dst.name, check="source_ip"), cluster)


def test_cross_node_server_sees_client_pod_ip(src: SourceView, dst: NodeInfo, cluster: Cluster) -> None:
    assert_server_saw_pod_ip(src.result(POD_TCP + dst.name, check="source_ip"), cluster)


def test_clusterip_backend_sees_client_pod_ip(src: SourceView, cluster: Cluster) -> None:
    assert_server_saw_pod_ip(src.result(SERVICE_TCP, check="source_ip"), cluster)
