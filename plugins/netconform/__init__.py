"""netconform pytest plugins: the framework the suites in suites/ stand on.

cluster  connection, node inventory, run id          (plugins.cluster)
probes   probe namespace, workload, batched dialing   (plugins.probes, plugins.dial)
"""
