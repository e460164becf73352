"""Which way the diagnosis reaches nodes: `agent`, `none`, or a testinfra URL with `{node}`/`{ip}`.

testinfra (pytest-testinfra, the `node-access` extra) is needed for the URLs only (ssh://, docker://):
the agent is reached through the pod exec API (`nodes.backend`)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from netconform.errors import NetconformError, UsageError, missing_extra

__all__ = ["AccessError", "AccessSpec", "check_address", "check_node_name", "parse_node_access"]

# RFC 1123 DNS subdomain, as Kubernetes validates a Node's name: nothing in it can start an option
# (`-oProxyCommand=...`, `--privileged`) or end the host part of a URL (`?ssh_config=`, `@`, `/`, `:`)
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")


class AccessError(NetconformError):
    """A node could not be reached or inspected; str() is one sentence for the operator."""


@dataclass(frozen=True)
class AccessSpec:
    kind: str  # agent | ssh | docker | none | other testinfra scheme
    template: str = ""  # e.g. "ssh://core@{node}"; {node} and {ip} are substituted

    def hostspec(self, node: str, ip: str | None) -> str:
        """The template with {node} and {ip} filled in, each checked first (AccessError, one sentence)."""
        node = check_node_name(node)
        address = check_address(ip, node) if ip else node
        return self.template.replace("{node}", node).replace("{ip}", address)


def check_node_name(name: str) -> str:
    """`name` when it is an RFC 1123 DNS subdomain (what Kubernetes allows a node), else AccessError."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise AccessError(f"node name {name[:80]!r} is not an RFC 1123 DNS subdomain: not put into a node access URL")
    return name


def check_address(ip: str, node: str) -> str:
    """`ip` in its canonical form when it is an IP address, else AccessError."""
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise AccessError(
            f"address {ip[:80]!r} of node {node} is not an IP address: not put into a node access URL"
        ) from None


def parse_node_access(text: str) -> AccessSpec:
    """Validate --node-access; raises UsageError with one sentence."""
    t = (text or "agent").strip()
    if t in ("agent", "none"):
        return AccessSpec(t)
    scheme, sep, rest = t.partition("://")
    if not sep or not rest:
        raise UsageError(f"--node-access {t!r}: use agent, none, ssh://user@{{node}} or docker://{{node}}")
    try:
        import testinfra.backend
    except ImportError:
        raise missing_extra(f"--node-access {t!r}", "pytest-testinfra", "node-access") from None
    if scheme not in testinfra.backend.BACKENDS:
        raise UsageError(
            f"--node-access {t!r}: unknown scheme {scheme!r} "
            f"(testinfra knows {', '.join(sorted(testinfra.backend.BACKENDS))})"
        )
    if "{node}" not in rest and "{ip}" not in rest:
        raise UsageError(f"--node-access {t!r} must contain {{node}} or {{ip}}, e.g. {scheme}://{{node}}")
    return AccessSpec(scheme, t)
