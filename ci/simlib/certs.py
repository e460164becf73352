"""A private CA, the API server's serving certificate, an admin client certificate, the service-account key."""

from __future__ import annotations

import base64
import json

from . import config
from .proc import run

D = config.CERTS


def _openssl(*args: str) -> None:
    run(["openssl", *args], timeout=60)


def _cert(name: str, subject: str, sans: list[str] | None = None) -> None:
    if (D / f"{name}.crt").exists():
        return
    ext = D / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature,keyEncipherment"]
    lines += (
        ["extendedKeyUsage=serverAuth,clientAuth", "subjectAltName=" + ",".join(sans)]
        if sans
        else ["extendedKeyUsage=clientAuth"]
    )
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
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
    )
    _openssl(
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
        "30",
        "-extfile",
        str(ext),
        "-out",
        str(D / f"{name}.crt"),
    )


def ensure() -> None:
    D.mkdir(parents=True, exist_ok=True)
    if not (D / "ca.crt").exists():
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=netconform-sim-ca",
            "-keyout",
            str(D / "ca.key"),
            "-out",
            str(D / "ca.crt"),
        )
    _cert(
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
    _cert("admin", "/O=system:masters/CN=netconform-sim-admin")
    if not (D / "sa.key").exists():
        _openssl("genrsa", "-out", str(D / "sa.key"), "2048")
        _openssl("rsa", "-in", str(D / "sa.key"), "-pubout", "-out", str(D / "sa.pub"))
    write_kubeconfig()


def write_kubeconfig() -> None:
    def b64(name: str) -> str:
        return base64.b64encode((D / name).read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "netconform-sim",
        "clusters": [
            {
                "name": "netconform-sim",
                "cluster": {
                    "server": f"https://{config.API_HOST}:{config.API_PORT}",
                    "certificate-authority-data": b64("ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
            }
        ],
        "contexts": [{"name": "netconform-sim", "context": {"cluster": "netconform-sim", "user": "admin"}}],
    }
    config.KUBECONFIG.write_text(json.dumps(doc, indent=1))
    config.KUBECONFIG.chmod(0o600)
