"""ClusterIP Service: every node reaches it, and through it every backend.

Incident: kube-proxy on one node is down or has stale rules, or one backend's node path is broken
(seed 1: the mysql Service failed along with the pod IPs behind the stale ARP entry). The Service
then "mostly works": some connections hang, or one backend never answers.
Check: from each node, fresh connections to the ClusterIP until every backend has answered (at most
a bound chosen so that a healthy run fails by chance with probability < 1e-9: see
netconform.dialing.coverage); the set of servers that answered is compared with the set that exists.
Over every IP family the cluster gave the Service a ClusterIP of.
"""

from netconform.dialing.coverage import false_failure_bound
from netconform.dialing.model import DialResult
from netconform.dialing.plan import service_target
from netconform.plugin.dial import SourceView
from netconform.workload.deploy import Deployment


def assert_every_backend_answers(result: DialResult, probes: Deployment) -> None:
    assert result.ok, result.describe()
    expected = {pod.name: node for node, pod in probes.servers.items()}
    missing = sorted(set(expected) - set(result.backends))
    unexpected = sorted(set(result.backends) - set(expected))
    assert not missing and not unexpected, (
        f"{result.path()}: {len(result.attempts)} connections reached {len(result.backends)}/{len(expected)} backends"
        + (f"; never answered: {', '.join(f'{name} ({expected[name]})' for name in missing)}" if missing else "")
        + (f"; answered by unknown backends: {', '.join(unexpected)}" if unexpected else "")
        + (
            f" (dialed until every backend answered or {result.bound} connections; a reachable backend stays"
            f" unseen that long with probability < {false_failure_bound(len(expected), result.bound):.0e})"
        )
    )


def test_clusterip_tcp_reaches_every_backend(src: SourceView, family: str, probes: Deployment) -> None:
    assert_every_backend_answers(src.result(service_target("tcp", family)), probes)


def test_clusterip_udp_reaches_every_backend(src: SourceView, family: str, probes: Deployment) -> None:
    assert_every_backend_answers(src.result(service_target("udp", family)), probes)
