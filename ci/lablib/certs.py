"""A private CA and the client/serving certificates and kubeconfigs the lab's components use."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from . import config
from .proc import run

D = config.CERTS


def _ca() -> None:
    if (D / "ca.crt").exists():
        return
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=netconform-lab-ca",
            "-keyout",
            str(D / "ca.key"),
            "-out",
            str(D / "ca.crt"),
        ]
    )


def _cert(name: str, subject: str, sans: list[str] | None = None) -> None:
    """A key and a CA-signed certificate: client auth by default, serving auth with SANs."""
    if (D / f"{name}.crt").exists():
        return
    ext = D / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature,keyEncipherment"]
    if sans:
        lines += ["extendedKeyUsage=serverAuth,clientAuth", "subjectAltName=" + ",".join(sans)]
    else:
        lines += ["extendedKeyUsage=clientAuth"]
    ext.write_text("\n".join(lines) + "\n")
    run(
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            str(D / f"{name}.key"),
            "-out",
            str(D / f"{name}.csr"),
        ]
    )
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(D / f"{name}.csr"),
            "-CA",
            str(D / "ca.crt"),
            "-CAkey",
            str(D / "ca.key"),
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            str(ext),
            "-out",
            str(D / f"{name}.crt"),
        ]
    )


def kubeconfig(path: Path, user_cert: str, server: str) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "netconform-lab",
        "clusters": [
            {"name": "netconform-lab", "cluster": {"server": server, "certificate-authority-data": b64(D / "ca.crt")}}
        ],
        "users": [
            {
                "name": user_cert,
                "user": {
                    "client-certificate-data": b64(D / f"{user_cert}.crt"),
                    "client-key-data": b64(D / f"{user_cert}.key"),
                },
            }
        ],
        "contexts": [{"name": "netconform-lab", "context": {"cluster": "netconform-lab", "user": user_cert}}],
    }
    path.write_text(json.dumps(doc, indent=1))
    path.chmod(0o600)


def ensure(node_names: list[str]) -> None:
    D.mkdir(parents=True, exist_ok=True)
    _ca()
    _cert(
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
    _cert("admin", "/O=system:masters/CN=netconform-lab-admin")
    _cert("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
    for name in node_names:
        _cert(f"kubelet-{name}", f"/O=system:nodes/CN=system:node:{name}")
    if not (D / "sa.key").exists():
        run(["openssl", "genrsa", "-out", str(D / "sa.key"), "2048"])
        run(["openssl", "rsa", "-in", str(D / "sa.key"), "-pubout", "-out", str(D / "sa.pub")])
    server = f"https://{config.API_IP}:{config.API_PORT}"
    kubeconfig(config.KUBECONFIG, "admin", server)
    for name in node_names:
        kubeconfig(D / f"kubelet-{name}.kubeconfig", f"kubelet-{name}", server)
