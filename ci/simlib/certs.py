"""The simulator's private CA, the API server's serving certificate, an admin client certificate, the
service-account key and the admin kubeconfig."""

from __future__ import annotations

from hostlib.certs import Authority

from . import config

D = config.CERTS
_authority = Authority(D, "netconform-sim", days=30)


def ensure() -> None:
    _authority.ca("netconform-sim-ca")
    _authority.cert(
        "apiserver",
        "/CN=kube-apiserver",
        [
            f"IP:{config.API_HOST}",
            "IP:10.112.0.1",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ],
    )
    # system:masters for the simulated cluster's own admin, controllers and KWOK
    _authority.cert("admin", "/O=system:masters/CN=netconform-sim-admin")
    _authority.service_account_key()
    _authority.kubeconfig(config.KUBECONFIG, "admin", f"https://{config.API_HOST}:{config.API_PORT}")
