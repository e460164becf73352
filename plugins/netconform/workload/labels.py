"""Names, labels and ports of everything netconform creates: one place, so nothing spells them by hand."""

from __future__ import annotations

__all__ = [
    "AGENT_CONTAINER",
    "AGENT_NAME",
    "CREATED_ANNOTATION",
    "HAIRPIN_SERVICE",
    "HOLD_PORT",
    "HTTP_PORT",
    "KEEP_ANNOTATION",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "OWNER_ANNOTATION",
    "PROBE_BINARY",
    "POLICY",
    "PROBE_CONTAINER",
    "ROLE_LABEL",
    "RUN_LABEL",
    "SERVICES",
    "SINGLE",
    "UDP_PORT",
    "managed_labels",
    "namespace_name",
    "role_selector",
]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "netconform"
RUN_LABEL = "netconform.io/run-id"
ROLE_LABEL = "netconform.io/role"
CREATED_ANNOTATION = "netconform.io/created"
OWNER_ANNOTATION = "netconform.io/owner"
KEEP_ANNOTATION = "netconform.io/keep"

PROBE_BINARY = "/probe"
PROBE_CONTAINER = "probe"
AGENT_NAME = "nc-agent"
AGENT_CONTAINER = "agent"
HTTP_PORT, UDP_PORT, HOLD_PORT = 8080, 8081, 8082

# Service kind -> name; every one selects the server pods of the run.
SERVICES = {
    "clusterip": "nc-server",
    "nodeport": "nc-nodeport",
    "nodeport_local": "nc-nodeport-local",
    "headless": "nc-headless",
}
# Selects the client pods (they serve too) with internalTrafficPolicy Local: each client that dials it
# is balanced to itself, through the bridge and back (hairpin). One Service for every node.
HAIRPIN_SERVICE = "nc-hairpin"
# One probe pod on the first selected node (a DaemonSet pinned there: no permission beyond the others')
# behind its own externalTrafficPolicy=Local NodePort: every other node must stay silent on that port.
SINGLE = {"role": "single", "daemonset": "nc-single", "service": "nc-single-local"}
# The NetworkPolicy check's own pods, which no other check dials and no Service selects: a target on
# every node (the policies select only these) and one allowed client on the first node; the two policies.
POLICY = {
    "target_role": "policy-target",
    "target_daemonset": "nc-policy-target",
    "client_role": "policy-client",
    "client_daemonset": "nc-policy-client",
    "deny": "nc-policy-deny",
    "allow": "nc-policy-allow",
}


def namespace_name(run_id: str) -> str:
    return f"netconform-{run_id}"


def managed_labels(run_id: str | None = None) -> dict[str, str]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    if run_id:
        labels[RUN_LABEL] = run_id
    return labels


def role_selector(role: str) -> str:
    """Label selector for the pods of one role (server, client, agent) in a run namespace."""
    return f"{ROLE_LABEL}={role}"
