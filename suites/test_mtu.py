"""Path MTU: full-size packets cross nodes, pod to pod and through a Service.

Incident (docs/faults.md #5, MTU mismatch / PMTU black hole): the overlay (flannel.1) carries less than
the MTU the pods were given: a node's VXLAN device recreated with a smaller MTU, a CNI config that
does not subtract the encapsulation, an underlay with jumbo frames on some nodes only. Small
requests pass, so every other check is green; large transfers across nodes hang (packets of the
pods' MTU are dropped, and when the ICMP "fragmentation needed" is lost or filtered nothing recovers).
Check: a UDP datagram that fills the pod MTU exactly (payload = MTU - 28 over IPv4, MTU - 48 over
IPv6) with DF set, so no hop may fragment it, must come back whole: from each node to every other
node's server pod, and through the ClusterIP to every backend. The pod MTU is the kernel's route MTU
toward those peers (`probe route-mtu`, the smallest), read once per run in one client pod: the route's
where it carries one (Cilium: eth0 1500, default route mtu 1450), else eth0's. Up to 3 datagrams per pod path, the first that comes back whole ends it (a
healthy path fails only if all 3 are lost by chance: p**3 for a loss rate p, 1e-9 at p = 1e-3); through
the Service until every backend answered, bounded as in test_service.py. When small datagrams fail
on the same path too, the test skips: that path is broken outright (test_pod_to_pod, test_service).
"""

import re

import pytest

from netconform.dialing.coverage import false_failure_bound
from netconform.dialing.model import DialResult
from netconform.dialing.plan import IP_OVERHEAD, mtu_target, pod_target, service_target
from netconform.kube.inventory import NodeInfo
from netconform.plugin.dial import SourceView
from netconform.workload.deploy import Deployment

FAMILY = {"ipv4": "IPv4", "ipv6": "IPv6"}


def pod_mtu(probes: Deployment) -> int:
    if not probes.pod_mtu:
        pytest.fail(f"the pod MTU is unknown, so no full-size datagram was sent: {probes.pod_mtu_error}", pytrace=False)
    return probes.pod_mtu


def size_words(mtu: int, family: str) -> str:
    """`1450-byte IPv4 packets (the pod MTU: 1422-byte UDP payload + 28, DF set)`"""
    overhead = IP_OVERHEAD[family]
    return f"{mtu}-byte {FAMILY[family]} packets (the pod MTU: {mtu - overhead}-byte UDP payload + {overhead}, DF set)"


def failure_words(result: DialResult) -> str:
    """What the failed datagrams met: `too big for a route MTU of 1000 (x3)`, `no reply within 2s (x3)`."""
    kinds: dict[str, int] = {}
    for attempt in result.failures:
        route = re.search(r"route MTU (\d+)", attempt.detail)
        if attempt.error == "too_big" and route:
            words = f"too big for a route MTU of {route.group(1)}"
        elif attempt.error == "timeout":
            words = f"no reply within {result.timeout_ms / 1000:g}s (dropped without an ICMP answer: a PMTU black hole)"
        else:
            words = attempt.detail or attempt.error or "other"
        kinds[words] = kinds.get(words, 0) + 1
    return ", ".join(f"{w} (x{n})" if n > 1 else w for w, n in kinds.items())


@pytest.mark.pairs("cross-node")
def test_full_size_datagram_crosses_nodes(src: SourceView, dst: NodeInfo, family: str, probes: Deployment) -> None:
    mtu = pod_mtu(probes)
    result = src.result(mtu_target(family, dst.name))
    if any(a.ok for a in result.attempts):
        return
    small = src.result(pod_target("udp", dst.name, family), record=False)
    if not small.ok:
        pytest.skip(f"small datagrams fail on this path too ({small.what_went_wrong()}): see test_udp_cross_node")
    pytest.fail(
        f"{result.path()}: {size_words(mtu, family)} do not get through, small datagrams do: "
        f"{len(result.failures)}/{len(result.attempts)} tries {failure_words(result)}",
        pytrace=False,
    )


def test_full_size_datagram_through_clusterip(src: SourceView, family: str, probes: Deployment) -> None:
    mtu = pod_mtu(probes)
    result = src.result(mtu_target(family))
    expected = {pod.name: node for node, pod in probes.servers.items()}
    missing = sorted(set(expected) - set(result.backends))
    if not missing:
        return
    small = src.result(service_target("udp", family), record=False)
    if not set(missing) <= set(small.backends):
        pytest.skip(f"small datagrams do not reach every backend either ({small.what_went_wrong()}): see test_service")
    bound = false_failure_bound(len(expected), result.bound)
    pytest.fail(
        f"{result.path()}: {size_words(mtu, family)} reached {len(result.backends)}/{len(expected)} backends, small "
        f"datagrams all of them; never answered whole: {', '.join(f'{n} ({expected[n]})' for n in missing)}; "
        f"{len(result.failures)}/{len(result.attempts)} tries {failure_words(result) or 'answered by other backends'}"
        f" (sent until every backend answered or {result.bound} tries or {len(result.failures)} failures; a backend "
        f"that carries the size stays unseen that long with probability < {bound:.0e})",
        pytrace=False,
    )
