"""Stability: many consecutive new connections, every one must succeed.

Incident: behind NAT with net.ipv4.tcp_tw_recycle=1 the first connection to a NodePort works and
later ones hang (timestamps per source IP not monotonic); a full conntrack table or an insert race
drops random new connections. A single dial does not see it, a hundred in a row do. From every
node at once: --stability-count fresh connections to a peer node's NodePort (a ring, so every
NodePort is hammered once) and to the ClusterIP.
"""

import pytest

from netconform.dial import (
    STABILITY_CLUSTERIP,
    STABILITY_NODEPORT,
    DialResult,
    SourceView,
    connection_summary,
    parametrize_sources,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_sources(metafunc)


def assert_every_connection_succeeds(result: DialResult, record_property) -> None:
    record_property("success_ratio", round(result.success_ratio, 4))
    record_property("backends", result.backends)
    record_property("connect_p50_ms", result.connect_percentile(50))
    record_property("connect_p99_ms", result.connect_percentile(99))
    assert result.ok, connection_summary(result)


def test_nodeport_connections_all_succeed(src: SourceView, record_property) -> None:
    assert_every_connection_succeeds(src.result(STABILITY_NODEPORT), record_property)


def test_clusterip_connections_all_succeed(src: SourceView, record_property) -> None:
    assert_every_connection_succeeds(src.result(STABILITY_CLUSTERIP), record_property)
