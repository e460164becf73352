"""The pytest11 entry point `netconform`: pulls in netconform's pytest plugins, the only modules with
options, hooks and fixtures (`pytest -p no:netconform` turns them all off)."""

pytest_plugins = [
    "netconform.plugin.session",
    "netconform.plugin.junit",
    "netconform.plugin.checks",
    "netconform.plugin.probes",
    "netconform.plugin.dial",
    "netconform.plugin.collection",
    "netconform.plugin.dns_retries",
    "netconform.plugin.nodes",
    "netconform.plugin.diagnose",
    "netconform.plugin.reporting",
    "netconform.plugin.reporting_per_test",
]
