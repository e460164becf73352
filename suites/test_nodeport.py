"""NodePort: every node's InternalIP:NodePort, from pods on every node and from outside the cluster.

Incidents: the NodePort range is dropped by a host firewall on one node; kube-proxy is not running
there; with externalTrafficPolicy=Local, traffic must stay on nodes with a local endpoint and keep the
client's address. And seed 2: `telnet NodeIP:NodePort` from another node worked the first time and
hung afterwards (tcp_tw_recycle behind NAT dropping SYNs) — one dial per NodePort, as here, passes
such a node; the many consecutive connections that catch it are in test_stability.py.
Check: each node's NodePort (eTP Cluster and Local) from a pod on every node; from the machine
running pytest (outside the cluster) the eTP=Local NodePort answers from a pod on that node and the
server sees this machine's address. Pods reach eTP=Local NodePorts through kube-proxy's short-circuit
to the cluster-wide chain, so locality and client IP are checked from outside; those checks skip,
with the reason, when this machine cannot reach node IPs.
"""

import pytest

from netconform.dialing.plan import nodeport_target
from netconform.kube.inventory import NodeInfo
from netconform.plugin.dial import HostView, SourceView


@pytest.mark.pairs("all")
def test_nodeport_from_pod(src: SourceView, dst: NodeInfo) -> None:
    result = src.result(nodeport_target(dst.name))
    assert result.ok, result.describe()


@pytest.mark.pairs("all")
def test_nodeport_local_from_pod(src: SourceView, dst: NodeInfo) -> None:
    result = src.result(nodeport_target(dst.name, local=True))
    assert result.ok, result.describe()


def test_nodeport_from_this_machine(host_dials: HostView, dst: NodeInfo) -> None:
    result = host_dials.result(dst, nodeport_target(dst.name))
    assert result.ok, result.describe()


def test_nodeport_local_answers_locally_and_keeps_client_ip(host_dials: HostView, dst: NodeInfo) -> None:
    result = host_dials.result(dst, nodeport_target(dst.name, local=True))
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
