"""The control plane, in the root namespace: etcd on loopback, the API server on the lab link only."""

from __future__ import annotations

import json
from pathlib import Path

from hostlib.control import apiserver_cert_args, controller_manager_cert_args, etcd_argv, service_account_args

from . import config, proc
from .proc import LabError, run

CP = f"{config.CGROUP_ROOT}/control-plane"
C = config.CERTS


def kubectl(bin_dir: Path, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> str:
    return run(
        [str(bin_dir / "kube"), "kubectl", "--kubeconfig", str(config.KUBECONFIG), "--request-timeout=20s", *args],
        input=input,
        check=check,
        timeout=timeout,
    )


def start(bin_dir: Path) -> None:
    kube = str(bin_dir / "kube")
    var = config.variant()
    services = ",".join(var.service_cidrs)
    # dual-stack: IPv4 first (the primary family, as the node IPs, ClusterIP of `kubernetes` and kube-dns)
    node_masks = (
        ["--node-cidr-mask-size-ipv4", "24", "--node-cidr-mask-size-ipv6", "64"]
        if var.dual
        else ["--node-cidr-mask-size", "24"]
    )
    if not proc.pid_of("etcd"):
        proc.start(
            "etcd",
            etcd_argv(bin_dir / "etcd", "lab", config.STATE / "etcd", config.ETCD_CLIENT, config.ETCD_PEER, 2 << 30),
            CP,
        )
    if not proc.pid_of("kube-apiserver"):
        proc.start(
            "kube-apiserver",
            [
                kube,
                "kube-apiserver",
                "--etcd-servers",
                f"http://{config.ETCD_CLIENT}",
                "--bind-address",
                config.API_IP,
                "--advertise-address",
                config.API_IP,
                "--secure-port",
                str(config.API_PORT),
                "--service-cluster-ip-range",
                services,
                "--allow-privileged=true",
                "--authorization-mode",
                "Node,RBAC",
                "--enable-admission-plugins",
                "NodeRestriction",
                *apiserver_cert_args(C),
                "--kubelet-client-certificate",
                str(C / "apiserver-kubelet-client.crt"),
                "--kubelet-client-key",
                str(C / "apiserver-kubelet-client.key"),
                "--kubelet-preferred-address-types",
                "InternalIP",
                *service_account_args(C, f"https://kubernetes.default.svc.{config.CLUSTER_DOMAIN}"),
                "--profiling=false",
                "--v=1",
            ],
            CP,
        )
    proc.wait_for(
        "the API server to answer /readyz",
        lambda: (
            proc.ensure_running("etcd")
            or proc.ensure_running("kube-apiserver")
            or kubectl(bin_dir, "get", "--raw", "/readyz", check=False, timeout=10).strip() == "ok"
        ),
        120,
        1.0,
        log=str(config.LOGS / "kube-apiserver.log"),
    )
    common = [
        "--kubeconfig",
        str(config.KUBECONFIG),
        "--authentication-kubeconfig",
        str(config.KUBECONFIG),
        "--authorization-kubeconfig",
        str(config.KUBECONFIG),
        "--bind-address",
        "127.0.0.1",
        "--profiling=false",
        "--v=1",
    ]
    if not proc.pid_of("kube-controller-manager"):
        proc.start(
            "kube-controller-manager",
            [
                kube,
                "kube-controller-manager",
                *common,
                "--secure-port",
                str(config.CM_PORT),
                "--allocate-node-cidrs",
                "--cluster-cidr",
                ",".join(var.pod_cidrs),
                *node_masks,
                "--service-cluster-ip-range",
                services,
                *controller_manager_cert_args(C),
            ],
            CP,
        )
    if not proc.pid_of("kube-scheduler"):
        proc.start(
            "kube-scheduler",
            [kube, "kube-scheduler", *common, "--secure-port", str(config.SCHED_PORT), "--leader-elect=false"],
            CP,
        )


COREFILE = f""".:53 {{
    errors
    health :8080
    ready :8181
    kubernetes {config.CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"""


def coredns_manifest() -> dict:
    """CoreDNS with no forward plugin: the lab resolves cluster names only and asks nobody outside."""
    labels = {"k8s-app": "kube-dns"}
    ns = "kube-system"
    items = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": ns},
            "data": {"Corefile": COREFILE},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "affinity": {
                            "podAntiAffinity": {
                                "preferredDuringSchedulingIgnoredDuringExecution": [
                                    {
                                        "weight": 100,
                                        "podAffinityTerm": {
                                            "labelSelector": {"matchLabels": labels},
                                            "topologyKey": "kubernetes.io/hostname",
                                        },
                                    }
                                ]
                            }
                        },
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                        "containers": [
                            {
                                "name": "coredns",
                                "image": config.IMAGES["coredns"],
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                                "ports": [
                                    {"containerPort": 53, "protocol": "UDP", "name": "dns"},
                                    {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"},
                                ],
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
            "spec": {
                "clusterIP": config.DNS_IP,
                "selector": labels,
                **({"ipFamilyPolicy": "PreferDualStack"} if config.variant().dual else {}),
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def deploy_coredns(bin_dir: Path) -> None:
    kubectl(bin_dir, "apply", "-f", "-", input=json.dumps(coredns_manifest()))


def stop() -> None:
    for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        proc.stop(name)


def server_version(bin_dir: Path) -> str:
    try:
        return json.loads(kubectl(bin_dir, "version", "-o", "json"))["serverVersion"]["gitVersion"]
    except (LabError, KeyError, ValueError):
        return "unknown"
