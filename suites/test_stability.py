"""Stability: many consecutive new connections, every one must succeed.

Incident (seed 2, docs/faults.md #2): behind NAT with net.ipv4.tcp_tw_recycle=1 the first connection to a NodePort
works and later ones hang (PAWS drops SYNs whose timestamps are not monotonic per source IP); a full
conntrack table or an insert race drops random new connections. A single dial does not see it; a
hundred in a row do.
Check: from every node at once, --stability-count fresh connections to a peer node's NodePort (a
ring, so every NodePort is hammered once) and to the ClusterIP, over each IP family; success ratio,
backends, p50/p99.
"""

import pytest

from netconform.dialing.model import DialResult, connection_summary
from netconform.dialing.plan import stability_target
from netconform.plugin.dial import SourceView


def assert_every_connection_succeeds(result: DialResult, item: pytest.Item) -> None:
    # plain user properties: JUnit XML carries them without record_property's xunit2 warning
    item.user_properties += [
        ("success_ratio", round(result.success_ratio, 4)),
        ("backends", ",".join(result.backends)),
        ("connect_p50_ms", result.connect_percentile(50)),
        ("connect_p99_ms", result.connect_percentile(99)),
    ]
    assert result.ok, connection_summary(result)


def test_nodeport_connections_all_succeed(src: SourceView, family: str, request: pytest.FixtureRequest) -> None:
    assert_every_connection_succeeds(src.result(stability_target("nodeport", family)), request.node)


def test_clusterip_connections_all_succeed(src: SourceView, family: str, request: pytest.FixtureRequest) -> None:
    assert_every_connection_succeeds(src.result(stability_target("clusterip", family)), request.node)
