"""Pod to pod: the path every other one rides on.

Incident: a node keeps a stale ARP entry for a peer's flannel.1 MAC (or lacks the route/FDB entry
for a peer's podCIDR, or the VXLAN port is blocked, or ip_forward is off). Pods on that node cannot
reach pods elsewhere, while pods on the same node still talk. So: each node with itself, and every
ordered pair of nodes in both directions, over TCP and UDP.
"""

import pytest

from netconform.cluster import NodeInfo
from netconform.dial import POD_TCP, POD_UDP, SourceView, parametrize_pairs


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_pairs(metafunc, same_node=metafunc.function.__name__.endswith("same_node"))


def test_tcp_same_node(src: SourceView, dst: NodeInfo) -> None:
    result = src.result(POD_TCP + dst.name)
    assert result.ok, result.describe()


def test_udp_same_node(src: SourceView, dst: NodeInfo) -> None:
    result = src.result(POD_UDP + dst.name)
    assert result.ok, result.describe()


def test_tcp_cross_node(src: SourceView, dst: NodeInfo) -> None:
    result = src.result(POD_TCP + dst.name)
    assert result.ok, result.describe()


def test_udp_cross_node(src: SourceView, dst: NodeInfo) -> None:
    result = src.result(POD_UDP + dst.name)
    assert result.ok, result.describe()
