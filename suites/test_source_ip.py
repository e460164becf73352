"""Source IP: the server sees the client pod's own address.

Incident (seed 3, docs/faults.md #3): dockerd's --ip-masq rule (`-s <podCIDR> ! -o docker0 -j MASQUERADE`, with
containerd `! -o cni0`) SNATs pod traffic that leaves the node, so keystone saw the client nodes'
flannel.1 addresses (x.x.x.0) instead of pod IPs, for cross-node traffic only; network policies and
audit logs then go wrong.
Check: the address the server saw, pod -> pod on the same node and across nodes, and pod -> ClusterIP,
over each IP family (the server must see the client's address of that family).
"""

import pytest

from netconform.dialing.model import DialResult
from netconform.dialing.plan import pod_target, service_target
from netconform.kube.inventory import NodeInfo
from netconform.plugin.dial import SourceView
from netconform.plugin.session import Cluster


def assert_server_saw_pod_ip(result: DialResult, cluster: Cluster, family: str, src: SourceView) -> None:
    if not any(a.ok for a in result.attempts):
        pytest.skip(f"no answer to read the source IP from: {result.describe()} (see the reachability tests)")
    own = src.ip_of(family)
    wrong = [ip for ip in result.seen_ips if ip != own]
    assert not wrong, f"{result.path()}: " + "; ".join(
        f"server saw {ip} instead of {own}, which is {cluster.owner_of(ip) or 'no node address netconform knows'}"
        for ip in wrong
    )


@pytest.mark.pairs("same-node")
def test_same_node_server_sees_client_pod_ip(src: SourceView, dst: NodeInfo, family: str, cluster: Cluster) -> None:
    assert_server_saw_pod_ip(src.result(pod_target("tcp", dst.name, family), check="source_ip"), cluster, family, src)


@pytest.mark.pairs("cross-node")
def test_cross_node_server_sees_client_pod_ip(src: SourceView, dst: NodeInfo, family: str, cluster: Cluster) -> None:
    assert_server_saw_pod_ip(src.result(pod_target("tcp", dst.name, family), check="source_ip"), cluster, family, src)


def test_clusterip_backend_sees_client_pod_ip(src: SourceView, family: str, cluster: Cluster) -> None:
    assert_server_saw_pod_ip(src.result(service_target("tcp", family), check="source_ip"), cluster, family, src)
