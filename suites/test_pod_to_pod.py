"""Pod to pod: the path every other one rides on.

Incident (seed 1, docs/faults.md #1): a node keeps a stale ARP entry for a peer's flannel.1 MAC after flanneld was
re-created without cleaning its interfaces; replies arrive with the wrong MAC and are dropped. Pods
on that node cannot reach pods elsewhere while pods on the same node still talk. The same picture
comes from a missing route/FDB entry for a peer's podCIDR, a blocked VXLAN port or ip_forward off.
Check: each node with itself, and every ordered pair of nodes in both directions, over TCP and UDP,
over every IP family of the cluster.
"""

import pytest

from netconform.dialing.plan import pod_target
from netconform.kube.inventory import NodeInfo
from netconform.plugin.dial import SourceView


@pytest.mark.pairs("same-node")
def test_tcp_same_node(src: SourceView, dst: NodeInfo, family: str) -> None:
    result = src.result(pod_target("tcp", dst.name, family))
    assert result.ok, result.describe()


@pytest.mark.pairs("same-node")
def test_udp_same_node(src: SourceView, dst: NodeInfo, family: str) -> None:
    result = src.result(pod_target("udp", dst.name, family))
    assert result.ok, result.describe()


@pytest.mark.pairs("cross-node")
def test_tcp_cross_node(src: SourceView, dst: NodeInfo, family: str) -> None:
    result = src.result(pod_target("tcp", dst.name, family))
    assert result.ok, result.describe()


@pytest.mark.pairs("cross-node")
def test_udp_cross_node(src: SourceView, dst: NodeInfo, family: str) -> None:
    result = src.result(pod_target("udp", dst.name, family))
    assert result.ok, result.describe()
