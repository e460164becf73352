"""ClusterIP Service: every node reaches it, and through it every backend.

Incident: kube-proxy on one node is down or has stale rules, or one backend's node path is broken
(seed 1: the mysql Service failed along with the pod IPs behind the stale ARP entry). The Service
then "mostly works": some connections hang, or one backend never answers.
Check: from each node, fresh connections to the ClusterIP until every backend has answered (at most
a bound chosen so that a healthy run fails by chance with probability < 1e-9: see
netconform.dialing.coverage); the set of servers that answered is compared with the set that exists.
Over every IP family the cluster gave the Service a ClusterIP of.
"""

from netconform.dialing.coverage import backend_verdict
from netconform.dialing.model import DialResult
from netconform.dialing.plan import service_target
from netconform.plugin.dial import SourceView
from netconform.workload.deploy import Deployment


def assert_every_backend_answers(result: DialResult, probes: Deployment) -> None:
    problem = backend_verdict(result, {pod.name: node for node, pod in probes.servers.items()})
    assert problem is None, problem


def test_clusterip_tcp_reaches_every_backend(src: SourceView, family: str, probes: Deployment) -> None:
    assert_every_backend_answers(src.result(service_target("tcp", family)), probes)


def test_clusterip_udp_reaches_every_backend(src: SourceView, family: str, probes: Deployment) -> None:
    assert_every_backend_answers(src.result(service_target("udp", family)), probes)
