"""Command lines of a one-member etcd and of the API server's certificate flags, as both clusters run them."""

from __future__ import annotations

from pathlib import Path


def etcd_argv(etcd: Path, member: str, data_dir: Path, client: str, peer: str, quota_bytes: int) -> list[str]:
    """A single-member etcd over plain HTTP on client and peer (host:port), no metrics listener."""
    return [
        str(etcd),
        "--name",
        member,
        "--data-dir",
        str(data_dir),
        "--listen-client-urls",
        f"http://{client}",
        "--advertise-client-urls",
        f"http://{client}",
        "--listen-peer-urls",
        f"http://{peer}",
        "--initial-advertise-peer-urls",
        f"http://{peer}",
        "--initial-cluster",
        f"{member}=http://{peer}",
        "--listen-metrics-urls",
        "",
        "--quota-backend-bytes",
        str(quota_bytes),
    ]


def apiserver_cert_args(certs: Path) -> list[str]:
    """The API server's client CA and serving certificate (hostlib.certs.Authority's file names)."""
    return [
        "--client-ca-file",
        str(certs / "ca.crt"),
        "--tls-cert-file",
        str(certs / "apiserver.crt"),
        "--tls-private-key-file",
        str(certs / "apiserver.key"),
    ]


def service_account_args(certs: Path, issuer: str) -> list[str]:
    """The service-account token keys (Authority.service_account_key) and issuer."""
    return [
        "--service-account-key-file",
        str(certs / "sa.pub"),
        "--service-account-signing-key-file",
        str(certs / "sa.key"),
        "--service-account-issuer",
        issuer,
    ]


def controller_manager_cert_args(certs: Path) -> list[str]:
    """The controller manager signs node certificates with the CA and service-account tokens with sa.key;
    each controller gets its own service account; one instance, so no leader election."""
    return [
        "--cluster-signing-cert-file",
        str(certs / "ca.crt"),
        "--cluster-signing-key-file",
        str(certs / "ca.key"),
        "--root-ca-file",
        str(certs / "ca.crt"),
        "--service-account-private-key-file",
        str(certs / "sa.key"),
        "--use-service-account-credentials",
        "--leader-elect=false",
    ]
