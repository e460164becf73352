"""Everything netconform creates, as plain dicts (or client models for the namespace): no API calls here."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client as k8s

from netconform.workload.labels import (
    AGENT_CONTAINER,
    AGENT_NAME,
    CREATED_ANNOTATION,
    HAIRPIN_SERVICE,
    HTTP_PORT,
    KEEP_ANNOTATION,
    MANAGED_BY_LABEL,
    OWNER_ANNOTATION,
    POLICY,
    PROBE_CONTAINER,
    ROLE_LABEL,
    RUN_LABEL,
    SERVICES,
    SINGLE,
    UDP_PORT,
    managed_labels,
    namespace_name,
)
from netconform.workload.namespace import owner_token

__all__ = ["agent_daemonset", "namespace_manifest", "network_policies", "only_on", "workload_manifests"]


def namespace_manifest(run_id: str, keep: bool) -> k8s.V1Namespace:
    return k8s.V1Namespace(
        metadata=k8s.V1ObjectMeta(
            name=namespace_name(run_id),
            labels={
                **managed_labels(run_id),
                # the node agent (hostNetwork, privileged) lives here too
                "pod-security.kubernetes.io/enforce": "privileged",
            },
            annotations={
                CREATED_ANNOTATION: str(int(time.time())),
                OWNER_ANNOTATION: owner_token(),
                KEEP_ANNOTATION: "true" if keep else "false",
            },
        )
    )


def only_on(node_names: list[str]) -> dict[str, Any]:
    """Node affinity to exactly these nodes: matchFields on the name is how the DaemonSet controller
    itself pins pods, and the API allows one value per field term, so one (ORed) term per node."""
    terms = [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [n]}]} for n in node_names]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def _probe_daemonset(name: str, role: str, run_id: str, image: str, node_names: list[str]) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, **managed_labels(run_id), ROLE_LABEL: role}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {ROLE_LABEL: role, RUN_LABEL: run_id}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": only_on(node_names),
                    "tolerations": [{"operator": "Exists"}],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": PROBE_CONTAINER,
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["serve", "--http-port", str(HTTP_PORT), "--udp-port", str(UDP_PORT)],
                            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                            "ports": [
                                {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                                {"name": "udp", "containerPort": UDP_PORT, "protocol": "UDP"},
                            ],
                            # probed every second from the start: a pod is Ready (and listed by the Services)
                            # within a second of its server listening
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": HTTP_PORT},
                                "initialDelaySeconds": 0,
                                "periodSeconds": 1,
                            },
                            # requests but no CPU limit: a throttled probe reports timeouts that are not the network's
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": 65534,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def _service(name: str, run_id: str, kind: str, role: str = "server") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {ROLE_LABEL: role, RUN_LABEL: run_id},
        "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"}],
        # every IP family the cluster has (single-stack clusters give the one they have)
        "ipFamilyPolicy": "PreferDualStack",
    }
    if kind in ("clusterip", "hairpin"):
        spec["ports"].append({"name": "udp", "port": UDP_PORT, "targetPort": UDP_PORT, "protocol": "UDP"})
    if kind == "hairpin":
        spec["internalTrafficPolicy"] = "Local"
    elif kind == "clusterip":
        pass
    elif kind == "headless":
        spec["clusterIP"] = "None"
    else:
        spec["type"] = "NodePort"
        spec["externalTrafficPolicy"] = "Local" if kind == "nodeport_local" else "Cluster"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": managed_labels(run_id)},
        "spec": spec,
    }


def workload_manifests(
    run_id: str, probe_image: str, node_names: list[str], network_policy: bool = True
) -> list[dict[str, Any]]:
    """Server and client DaemonSets on the selected nodes, the Services of every kind the checks dial,
    the hairpin Service over the clients, and the single pod (first node) behind its eTP=Local NodePort;
    with `network_policy` (that check is selected) its targets and its allowed client."""
    probes = [
        _probe_daemonset("nc-server", "server", run_id, probe_image, node_names),
        _probe_daemonset("nc-client", "client", run_id, probe_image, node_names),
        _probe_daemonset(SINGLE["daemonset"], SINGLE["role"], run_id, probe_image, node_names[:1]),
        *(_service(name, run_id, kind) for kind, name in SERVICES.items()),
        _service(HAIRPIN_SERVICE, run_id, "hairpin", role="client"),
        _service(SINGLE["service"], run_id, "nodeport_local", role=SINGLE["role"]),
    ]
    if not network_policy:
        return probes
    # the NetworkPolicy check's own: no Service selects them, no other check dials them
    return [
        *probes,
        _probe_daemonset(POLICY["target_daemonset"], POLICY["target_role"], run_id, probe_image, node_names),
        _probe_daemonset(POLICY["client_daemonset"], POLICY["client_role"], run_id, probe_image, node_names[:1]),
    ]


def network_policies(run_id: str) -> list[dict[str, Any]]:
    """The NetworkPolicy check's two policies, standard networking.k8s.io/v1 only (every enforcing CNI
    implements it): one isolating the ingress of the policy targets (and nothing else: they select
    only role policy-target of this run), one allowing the policy client in, on both probe ports."""

    def role(name: str) -> dict[str, Any]:
        return {"matchLabels": {ROLE_LABEL: name, RUN_LABEL: run_id}}

    def policy(name: str, ingress: list[dict[str, Any]] | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"podSelector": role(POLICY["target_role"]), "policyTypes": ["Ingress"]}
        if ingress is not None:
            spec["ingress"] = ingress
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "labels": managed_labels(run_id)},
            "spec": spec,
        }

    ports = [{"protocol": "TCP", "port": HTTP_PORT}, {"protocol": "UDP", "port": UDP_PORT}]
    return [
        policy(POLICY["deny"], None),  # no ingress rule: every connection in is denied
        policy(POLICY["allow"], [{"from": [{"podSelector": role(POLICY["client_role"])}], "ports": ports}]),
    ]


def agent_daemonset(namespace: str, image: str, node_names: list[str]) -> dict[str, Any]:
    """The node agent: host network/PID namespaces, privileged, network tools, does nothing by itself."""
    labels = {"app.kubernetes.io/name": AGENT_NAME, MANAGED_BY_LABEL: "netconform", ROLE_LABEL: "agent"}
    host_ro = [("host-run", "/run", "/host/run"), ("host-etc", "/etc", "/host/etc")]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": AGENT_NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {ROLE_LABEL: "agent"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": only_on(node_names),
                    "hostNetwork": True,
                    "hostPID": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "tolerations": [{"operator": "Exists"}],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": AGENT_CONTAINER,
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "infinity"],
                            "securityContext": {"privileged": True},
                            "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "256Mi"}},
                            # /run/flannel and /etc/cni/net.d as the node sees them; read-only
                            "volumeMounts": [{"name": n, "mountPath": m, "readOnly": True} for n, _, m in host_ro],
                        }
                    ],
                    "volumes": [{"name": n, "hostPath": {"path": p}} for n, p, _ in host_ro],
                },
            },
        },
    }
