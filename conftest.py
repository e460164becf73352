"""Loads the netconform plugins; nothing else lives here."""

import importlib.util

_OPTIONAL = ("plugins.nodes", "plugins.diagnose", "plugins.reporting")  # built by other developers

pytest_plugins = ["plugins.cluster", "plugins.probes", "plugins.dial"] + [
    name for name in _OPTIONAL if importlib.util.find_spec(name) is not None
]
