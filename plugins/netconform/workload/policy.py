"""Creating the NetworkPolicy check's two policies in the run namespace (removed with it)."""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client as k8s

from netconform.errors import API_ERRORS, ProbeSetupError, api_error_sentence
from netconform.workload.manifests import network_policies

__all__ = ["CREATE_TIMEOUT_S", "create_network_policies"]

CREATE_TIMEOUT_S = 10


def create_network_policies(api: k8s.ApiClient, namespace: str, run_id: str) -> list[str]:
    """Create nc-policy-deny and nc-policy-allow (netconform.workload.manifests.network_policies); their
    names. An API that refuses them (no networking.k8s.io/v1, not permitted) is ProbeSetupError: the
    check cannot be made, which is no verdict on enforcement."""
    networking = k8s.NetworkingV1Api(api)
    names = []
    for body in network_policies(run_id):
        name = body["metadata"]["name"]
        try:
            # the client sends a dict as it is (typed as its model)
            networking.create_namespaced_network_policy(namespace, cast(Any, body), _request_timeout=CREATE_TIMEOUT_S)
        except API_ERRORS as exc:
            raise ProbeSetupError(api_error_sentence(exc, f"create networkpolicy {name} in {namespace}")) from None
        names.append(name)
    return names
