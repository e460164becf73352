"""A private CA in one directory, the certificates it signs and kubeconfigs that use them (openssl)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .proc import run


class Authority:
    """CA files ca.key/ca.crt in `dir`; certificates <name>.key/<name>.crt valid for `days`.

    `name` is the kubeconfigs' cluster and context name (netconform-lab, netconform-sim). Every
    step keeps what already exists, so `ensure` can run on each `up`."""

    def __init__(self, dir: Path, name: str, days: int) -> None:
        self.dir = dir
        self.name = name
        self.days = str(days)

    def _openssl(self, *args: str) -> None:
        run(["openssl", *args], timeout=60)

    def ca(self, common_name: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if (self.dir / "ca.crt").exists():
            return
        self._openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            self.days,
            "-subj",
            f"/CN={common_name}",
            "-keyout",
            str(self.dir / "ca.key"),
            "-out",
            str(self.dir / "ca.crt"),
        )

    def cert(self, name: str, subject: str, sans: list[str] | None = None) -> None:
        """A key and a CA-signed certificate: client auth by default, serving auth with SANs."""
        d = self.dir
        if (d / f"{name}.crt").exists():
            return
        ext = d / f"{name}.ext"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature,keyEncipherment"]
        if sans:
            lines += ["extendedKeyUsage=serverAuth,clientAuth", "subjectAltName=" + ",".join(sans)]
        else:
            lines += ["extendedKeyUsage=clientAuth"]
        ext.write_text("\n".join(lines) + "\n")
        key, csr, crt = (str(d / f"{name}.{suffix}") for suffix in ("key", "csr", "crt"))
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", key, "-out", csr)
        self._openssl(
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            str(d / "ca.crt"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            self.days,
            "-extfile",
            str(ext),
            "-out",
            crt,
        )

    def service_account_key(self) -> None:
        """sa.key and sa.pub: the API server signs and checks service-account tokens with them."""
        if (self.dir / "sa.key").exists():
            return
        self._openssl("genrsa", "-out", str(self.dir / "sa.key"), "2048")
        self._openssl("rsa", "-in", str(self.dir / "sa.key"), "-pubout", "-out", str(self.dir / "sa.pub"))

    def kubeconfig(self, path: Path, user_cert: str, server: str) -> None:
        """A kubeconfig (mode 0600) for server, authenticating with the certificate user_cert."""

        def b64(file: str) -> str:
            return base64.b64encode((self.dir / file).read_bytes()).decode()

        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": self.name,
            "clusters": [
                {"name": self.name, "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}
            ],
            "users": [
                {
                    "name": user_cert,
                    "user": {
                        "client-certificate-data": b64(f"{user_cert}.crt"),
                        "client-key-data": b64(f"{user_cert}.key"),
                    },
                }
            ],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": user_cert}}],
        }
        path.write_text(json.dumps(doc, indent=1))
        path.chmod(0o600)
