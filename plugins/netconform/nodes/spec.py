"""Which way the diagnosis reaches nodes: `agent`, `none`, or a testinfra URL with `{node}`/`{ip}`.

testinfra (pytest-testinfra, the `node-access` extra) is needed for the URLs only (ssh://, docker://):
the agent is reached through the pod exec API (`nodes.backend`)."""

from __future__ import annotations

from dataclasses import dataclass

from netconform.errors import NetconformError, UsageError, missing_extra

__all__ = ["AccessError", "AccessSpec", "parse_node_access"]


class AccessError(NetconformError):
    """A node could not be reached or inspected; str() is one sentence for the operator."""


@dataclass(frozen=True)
class AccessSpec:
    kind: str  # agent | ssh | docker | none | other testinfra scheme
    template: str = ""  # e.g. "ssh://core@{node}"; {node} and {ip} are substituted

    def hostspec(self, node: str, ip: str | None) -> str:
        return self.template.replace("{node}", node).replace("{ip}", ip or node)


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
