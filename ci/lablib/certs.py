"""The lab's private CA and the client/serving certificates and kubeconfigs its components use."""

from __future__ import annotations

from hostlib.certs import Authority

from . import config

D = config.CERTS
_authority = Authority(D, "netconform-lab", days=3650)


def ensure(node_names: list[str]) -> None:
    _authority.ca("netconform-lab-ca")
    _authority.cert(
        "apiserver",
        "/CN=kube-apiserver",
        [
            f"IP:{config.API_IP}",
            "IP:10.96.0.1",
            "IP:127.0.0.1",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            f"DNS:kubernetes.default.svc.{config.CLUSTER_DOMAIN}",
        ],
    )
    # system:masters: the lab's own admin, controllers, flanneld and kube-proxy; a lab keeps RBAC simple.
    _authority.cert("admin", "/O=system:masters/CN=netconform-lab-admin")
    _authority.cert("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
    for name in node_names:
        _authority.cert(f"kubelet-{name}", f"/O=system:nodes/CN=system:node:{name}")
    _authority.service_account_key()
    server = f"https://{config.API_IP}:{config.API_PORT}"
    _authority.kubeconfig(config.KUBECONFIG, "admin", server)
    for name in node_names:
        _authority.kubeconfig(D / f"kubelet-{name}.kubeconfig", f"kubelet-{name}", server)
