"""pytest plugin for tests/lab/test_faults.py: node access to $NETCONFORM_BREAK_NODE fails like a broken exec.

Loaded with `-p tests.lab.break_node_access` into a real suite run; it makes every command on that one
node raise the AccessError a failed exec raises, so the lab test can check that one node that cannot be
inspected neither stops the run nor hides what the other nodes show.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from netconform import nodes


def pytest_configure(config: pytest.Config) -> None:
    broken = os.environ.get("NETCONFORM_BREAK_NODE")
    if not broken:
        return
    real = nodes.NodeHosts.run

    def run(self: Any, node: str, command: str, timeout_s: float = nodes.COMMAND_TIMEOUT_S) -> Any:
        if node == broken:
            raise nodes.AccessError(
                f"exec into the agent on {node} failed: simulated by tests/lab/break_node_access.py"
            )
        return real(self, node, command, timeout_s)

    nodes.NodeHosts.run = run  # type: ignore[method-assign]
