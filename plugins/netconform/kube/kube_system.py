"""What kube-system says about the datapath: its DaemonSets' commands and kube-proxy's ConfigMap.

Read once per run, for the report (which CNI, which kube-proxy mode). Both reads are optional
(ClusterRole netconform-inspect): one not permitted, refused or failed reads as nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubernetes import client as k8s

from netconform.errors import API_ERRORS

__all__ = ["KubeSystem", "read_kube_system"]

NAMESPACE = "kube-system"
TIMEOUT_S = 10


@dataclass(frozen=True)
class KubeSystem:
    """`daemonsets`: (name, command and args of every container) of each DaemonSet; `proxy_configs`: the
    values of ConfigMap kube-proxy (its KubeProxyConfiguration). Empty when not read."""

    daemonsets: list[tuple[str, list[str]]] = field(default_factory=list)
    proxy_configs: list[str] = field(default_factory=list)

    @property
    def daemonset_names(self) -> list[str]:
        return [name for name, _ in self.daemonsets]


def read_kube_system(api: k8s.ApiClient, *, daemonsets: bool = True, proxy_config: bool = True) -> KubeSystem:
    """Read what is asked for (False: a permission the preflight found missing, so nothing is asked)."""
    return KubeSystem(
        daemonsets=_daemonsets(api) if daemonsets else [],
        proxy_configs=_kube_proxy_configs(api) if proxy_config else [],
    )


def _daemonsets(api: k8s.ApiClient) -> list[tuple[str, list[str]]]:
    try:
        items = k8s.AppsV1Api(api).list_namespaced_daemon_set(NAMESPACE, _request_timeout=TIMEOUT_S).items
    except API_ERRORS:
        return []
    out = []
    for ds in items:
        spec = ds.spec.template.spec if ds.spec and ds.spec.template else None
        argv = [a for k in (spec.containers if spec else []) for a in [*(k.command or []), *(k.args or [])]]
        out.append(((ds.metadata.name or "") if ds.metadata else "", argv))
    return out


def _kube_proxy_configs(api: k8s.ApiClient) -> list[str]:
    try:
        cm = k8s.CoreV1Api(api).read_namespaced_config_map("kube-proxy", NAMESPACE, _request_timeout=TIMEOUT_S)
    except API_ERRORS:
        return []  # not readable or not there: the DaemonSet or the nodes' rules may tell
    return list((cm.data or {}).values())
