"""Every API verb netconform uses, by feature, as suites/rbac.yaml grants them (one ClusterRole each;
tests/unit/test_cluster_rbac.py keeps the two equal). The run checks them before it deploys anything.
Namespaced resources are checked cluster-wide: the run namespace does not exist before the run."""

from __future__ import annotations

from netconform.kube.access import Permission

__all__ = [
    "GATE_PERMISSIONS",
    "GET_COREDNS_CONFIG",
    "GET_KUBE_PROXY_CONFIG",
    "INSPECT_PERMISSIONS",
    "LIST_DAEMONSETS",
    "ROLES",
    "RUN_PERMISSIONS",
]

# ClusterRole netconform: the checks and the diagnosis of failed ones. Missing any: the run stops.
RUN_PERMISSIONS: tuple[Permission, ...] = (
    Permission("list", "nodes"),
    Permission("list", "namespaces"),
    Permission("get", "namespaces"),
    Permission("create", "namespaces"),
    Permission("delete", "namespaces"),
    Permission("create", "daemonsets", "apps"),
    Permission("create", "services"),
    Permission("get", "services"),
    Permission("list", "pods"),
    # websocket exec is authorized as `get` by current API servers, as `create` by older ones
    Permission("get", "pods", subresource="exec"),
    Permission("create", "pods", subresource="exec"),
    Permission("list", "endpointslices", "discovery.k8s.io"),
    Permission("list", "events"),
    # the NetworkPolicy check (suites/test_network_policy.py): its two policies, removed with the namespace
    Permission("create", "networkpolicies", "networking.k8s.io"),
)

# ClusterRole netconform-inspect: read-only, optional. Missing: said once, the checks still run.
LIST_DAEMONSETS = Permission("list", "daemonsets", "apps")  # which CNI and proxy run in kube-system
GET_KUBE_PROXY_CONFIG = Permission("get", "configmaps", name="kube-proxy", namespace="kube-system")
# the Corefile: which block answers a name CoreDNS gets wrong (netconform.diagnose.rules.coredns_answer)
GET_COREDNS_CONFIG = Permission("get", "configmaps", name="coredns", namespace="kube-system")
INSPECT_PERMISSIONS: tuple[Permission, ...] = (LIST_DAEMONSETS, GET_KUBE_PROXY_CONFIG, GET_COREDNS_CONFIG)

# ClusterRole netconform-gate: what the gate program itself does (netconform.gate.PERMISSIONS, which
# it checks first, is the same list; the gate cannot import the plugins). The suite it runs needs
# ClusterRole netconform besides.
GATE_PERMISSIONS: tuple[Permission, ...] = (
    Permission("get", "namespaces"),
    Permission("create", "namespaces"),
    Permission("delete", "namespaces"),
    Permission("list", "nodes"),
    Permission("create", "daemonsets", "apps"),
    Permission("create", "configmaps"),
    Permission("create", "services"),
    Permission("list", "pods"),
    Permission("patch", "pods"),
    Permission("get", "pods", subresource="log"),
    Permission("list", "events"),
)

ROLES = {"netconform": RUN_PERMISSIONS, "netconform-inspect": INSPECT_PERMISSIONS, "netconform-gate": GATE_PERMISSIONS}
