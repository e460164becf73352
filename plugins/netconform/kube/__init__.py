"""Talking to the Kubernetes API: the one client factory, the node inventory, the permission
preflight and the one pod exec. Imports nothing of netconform's but `netconform.errors`."""
