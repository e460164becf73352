"""The name the gate was started by, which its messages and advice say: `ci/gate` from a checkout,
`netconform gate` from an installed package (netconform.cli). Set once, by gate.__main__.main."""

from __future__ import annotations

name = "ci/gate"


def command(phase: str) -> str:
    """How the operator runs a phase, as they started the gate: "`ci/gate close`"."""
    return f"`{name} {phase}`"
