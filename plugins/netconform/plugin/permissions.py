"""Every API verb a run uses, checked before anything is deployed (suites/rbac.yaml grants the same;
tests/unit/test_cluster_rbac.py keeps the two equal). Namespaced resources are checked cluster-wide:
the run namespace does not exist before the run."""

from __future__ import annotations

from netconform.kube.access import Permission

__all__ = ["REQUIRED_PERMISSIONS"]

REQUIRED_PERMISSIONS: tuple[Permission, ...] = (
    Permission("list", "nodes"),
    Permission("list", "namespaces"),
    Permission("get", "namespaces"),
    Permission("create", "namespaces"),
    Permission("delete", "namespaces"),
    Permission("create", "daemonsets", "apps"),
    Permission("create", "services"),
    Permission("get", "services"),
    Permission("list", "pods"),
    Permission("create", "pods", subresource="exec"),
    Permission("list", "endpointslices", "discovery.k8s.io"),
    Permission("list", "events"),
)
