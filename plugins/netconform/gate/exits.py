"""How the gate ends: exit codes and the one-sentence error that carries one."""

from __future__ import annotations

from netconform.errors import NetconformError

__all__ = ["EXIT_BAD_STATE", "EXIT_BLOCK", "EXIT_CANNOT_RUN", "EXIT_PASS", "EXIT_USAGE", "GateError"]

EXIT_PASS, EXIT_BLOCK, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3
EXIT_BAD_STATE = 4  # the state file is truncated, not JSON, or not what baseline wrote (not "blocked": 1)


class GateError(NetconformError):
    """One sentence; `code` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_CANNOT_RUN) -> None:
        super().__init__(message)
        self.code = code
