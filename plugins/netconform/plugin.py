"""The pytest11 entry point: pulls in netconform's pytest plugins (`pytest -p no:netconform` turns them off)."""

pytest_plugins = [
    "netconform.cluster",
    "netconform.probes",
    "netconform.dial",
    "netconform.nodes",
    "netconform.diagnose",
    "netconform.reporting",
]
