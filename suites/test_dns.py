"""DNS: Service names resolve from every node, to what the API says.

Incident: CoreDNS is down, loops, or has no endpoints; more often DNS fails as a consequence of a
broken node path (its pods sit on one node: in seed 1 name resolution failed behind the stale ARP
entry). Check: each node resolves the short, namespaced and fully qualified Service name (must equal
the ClusterIP the API assigned), the headless Service (must list every server pod) and
kubernetes.default, with the pod's own resolver and search list; per IP family, asking only for A
(ipv4) or AAAA (ipv6) records.
"""

import pytest

from netconform.dialing.model import DialResult
from netconform.dialing.plan import dns_target
from netconform.plugin.dial import SourceView
from netconform.workload.deploy import Deployment

SERVICE_NAME_FORMS = ("short", "namespaced", "fqdn")


RECORDS = {"ipv4": "A", "ipv6": "AAAA"}


def resolved(src: SourceView, kind: str, family: str) -> DialResult:
    result = src.result(dns_target(kind, family))
    assert result.ok, f"{result.describe()} ({RECORDS[family]} records)"
    return result


@pytest.mark.parametrize("form", SERVICE_NAME_FORMS)
def test_service_name_resolves_to_its_clusterip(src: SourceView, form: str, family: str, probes: Deployment) -> None:
    want = probes.service_ip(family)
    if want is None:
        pytest.skip(f"the API gave Service nc-server no {family} ClusterIP: no {RECORDS[family]} record to expect")
    result = resolved(src, form, family)
    assert result.addresses == [want], (
        f"{result.path()}: {RECORDS[family]} records {', '.join(result.addresses) or 'none'}, "
        f"but the API assigned ClusterIP {want}"
    )


def test_headless_service_lists_every_server_pod(src: SourceView, family: str, probes: Deployment) -> None:
    result = resolved(src, "headless", family)
    expected = {ip: node for node, pod in probes.servers.items() if (ip := pod.ip_of(family))}
    missing = sorted(set(expected) - set(result.addresses))
    extra = sorted(set(result.addresses) - set(expected))
    assert not missing and not extra, (
        f"{result.path()}: {RECORDS[family]} records {', '.join(result.addresses) or 'none'}"
        + (f"; missing server pods {', '.join(f'{ip} ({expected[ip]})' for ip in missing)}" if missing else "")
        + (f"; addresses that are no server pod: {', '.join(extra)}" if extra else "")
    )


def test_kubernetes_default_resolves_to_the_api_service(src: SourceView, family: str, probes: Deployment) -> None:
    want = probes.kubernetes_service_ip(family)
    if want is None:
        pytest.skip(f"Service default/kubernetes has no {family} ClusterIP (the API Service is single-stack)")
    result = resolved(src, "kubernetes", family)
    assert result.addresses == [want], (
        f"{result.path()}: {RECORDS[family]} records {', '.join(result.addresses) or 'none'}, "
        f"but Service default/kubernetes has ClusterIP {want}"
    )
