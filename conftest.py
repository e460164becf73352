"""Loads the netconform plugins; nothing else lives here."""

pytest_plugins = [
    "plugins.cluster",
    "plugins.probes",
    "plugins.dial",
    "plugins.nodes",
    "plugins.diagnose",
    "plugins.reporting",
]
