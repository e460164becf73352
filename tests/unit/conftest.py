"""Some unit tests import suites/ modules for their message helpers, and those modules apply the suites'
marks at import: this session's --strict-markers must know them whichever test ran before (the
netconform plugin, which registers them, is not loaded into the unit tests)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pairs(kind): the suites' node-pair marker (netconform.plugin.dial)")
    config.addinivalue_line("markers", "network_policy: the suites' NetworkPolicy check (netconform.plugin.policy)")
