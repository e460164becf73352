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
eTP=Local silence: a node without a local endpoint must not answer on an eTP=Local NodePort (a
kube-proxy that forwards it anyway hides the client address and defeats the load balancer's health
checks). One probe pod on the first node behind its own eTP=Local NodePort (nc-single-local): dialed
from outside on every node, the first node answers from that pod, every other node stays silent
(timeout or refused). From pods this cannot be seen: the short-circuit answers them on every node.
Every check over each IP family of the cluster.
"""

import pytest

from netconform.dialing.plan import nodeport_target, single_nodeport_target
from netconform.kube.inventory import NodeInfo
from netconform.plugin.dial import HostView, SourceView
from netconform.workload.deploy import Deployment
from netconform.workload.labels import SINGLE

SILENT = ("timeout", "refused", "reset")  # what a node without a local endpoint may do with the SYN


@pytest.mark.pairs("all")
def test_nodeport_from_pod(src: SourceView, dst: NodeInfo, family: str) -> None:
    result = src.result(nodeport_target(dst.name, family=family))
    assert result.ok, result.describe()


@pytest.mark.pairs("all")
def test_nodeport_local_from_pod(src: SourceView, dst: NodeInfo, family: str) -> None:
    result = src.result(nodeport_target(dst.name, local=True, family=family))
    assert result.ok, result.describe()


def test_nodeport_from_this_machine(host_dials: HostView, dst: NodeInfo, family: str) -> None:
    result = host_dials.result(dst, nodeport_target(dst.name, family=family))
    assert result.ok, result.describe()


def test_nodeport_local_answers_locally_and_keeps_client_ip(host_dials: HostView, dst: NodeInfo, family: str) -> None:
    result = host_dials.result(dst, nodeport_target(dst.name, local=True, family=family))
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


def test_nodeport_local_silent_without_local_backend(
    host_dials: HostView, dst: NodeInfo, family: str, probes: Deployment
) -> None:
    result = host_dials.result(dst, single_nodeport_target(dst.name, family))
    single = probes.single
    assert single is not None, f"{SINGLE['daemonset']} has no pod: nothing is behind {SINGLE['service']}"
    attempt = result.attempts[0]
    if dst.name == single.node:
        assert attempt.ok, (
            f"{result.path()}: {result.what_went_wrong()}, but {dst.name} runs the only backend {single.name}, "
            "so externalTrafficPolicy=Local must answer here"
        )
        assert attempt.server_hostname == single.name, (
            f"{result.path()}: answered by {attempt.server_hostname} on {attempt.server_node}, "
            f"not by the only backend {single.name} on {single.node}"
        )
        return
    assert not attempt.ok and attempt.error in SILENT, (
        f"{result.path()}: {dst.name} has no local endpoint, yet it "
        + (
            f"answered from {attempt.server_hostname} on {attempt.server_node} (the server saw {attempt.client_ip_seen})"
            if attempt.ok
            else f"did not stay silent: {result.what_went_wrong()}"
        )
        + f"; with externalTrafficPolicy=Local a node without a local backend must drop external traffic "
        f"(timeout or refused), not forward it to {single.node}"
    )
