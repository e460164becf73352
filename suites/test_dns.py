"""DNS: Service names resolve from every node, to what the API says.

Incident: CoreDNS is down, loops, or has no endpoints; more often DNS fails as a consequence of a
broken node path (its pods sit on one node: in seed 1 name resolution failed behind the stale ARP
entry). Check: each node resolves the short, namespaced and fully qualified Service name (must equal
the ClusterIP the API assigned), the headless Service (must list every server pod) and
kubernetes.default, with the pod's own resolver and search list.
"""

import pytest

from netconform.dialing.model import DialResult
from netconform.dialing.plan import dns_target
from netconform.plugin.dial import SourceView
from netconform.workload.deploy import Deployment

SERVICE_NAME_FORMS = ("short", "namespaced", "fqdn")


def resolved(src: SourceView, kind: str) -> DialResult:
    result = src.result(dns_target(kind))
    assert result.ok, result.describe()
    return result


@pytest.mark.parametrize("form", SERVICE_NAME_FORMS)
def test_service_name_resolves_to_its_clusterip(src: SourceView, form: str, probes: Deployment) -> None:
    result = resolved(src, form)
    assert result.addresses == [probes.cluster_ip], (
        f"{result.path()}: resolved to {', '.join(result.addresses) or 'nothing'}, "
        f"but the API assigned ClusterIP {probes.cluster_ip}"
    )


def test_headless_service_lists_every_server_pod(src: SourceView, probes: Deployment) -> None:
    result = resolved(src, "headless")
    expected = {pod.ip: node for node, pod in probes.servers.items()}
    missing = sorted(set(expected) - set(result.addresses))
    extra = sorted(set(result.addresses) - set(expected))
    assert not missing and not extra, (
        f"{result.path()}: resolved to {', '.join(result.addresses) or 'nothing'}"
        + (f"; missing server pods {', '.join(f'{ip} ({expected[ip]})' for ip in missing)}" if missing else "")
        + (f"; addresses that are no server pod: {', '.join(extra)}" if extra else "")
    )


def test_kubernetes_default_resolves_to_the_api_service(src: SourceView, probes: Deployment) -> None:
    result = resolved(src, "kubernetes")
    assert result.addresses == [probes.kubernetes_ip], (
        f"{result.path()}: resolved to {', '.join(result.addresses) or 'nothing'}, "
        f"but Service default/kubernetes has ClusterIP {probes.kubernetes_ip}"
    )
