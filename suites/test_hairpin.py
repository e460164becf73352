"""Hairpin: a pod reaches its own Service and is answered by itself.

Incident (docs/faults.md #14, hairpin off): the pod's bridge port (cni0) is not in hairpin mode: a CNI
config without "hairpinMode": true, kubelet --hairpin-mode=none, ports reset by hand. A pod whose
connection to a Service is balanced back to itself needs its frame sent back out of the bridge
port it came in on, which the bridge refuses without hairpin mode: the connection hangs. It hits
the backends of a Service calling that Service (a clustered database finding its peers, an app
calling its own API): 1 in N of their connections, N the number of backends.
Check: the client pods serve too; Service nc-hairpin selects them with internalTrafficPolicy Local,
so a client's connection to it can only go to the one local endpoint, itself (one Service for every
node). From every node, over each IP family, one connection that the dialing pod itself must answer.
"""

from netconform.dialing.plan import hairpin_target
from netconform.plugin.dial import SourceView


def test_pod_reaches_itself_through_its_service(src: SourceView, family: str) -> None:
    result = src.result(hairpin_target(family))
    assert result.ok, (
        f"{result.describe()}; the dialing pod is that Service's only endpoint on {src.node.name}, so the "
        "connection leaves through its own bridge port and has to come back in through it (hairpin)"
    )
    attempt = result.attempts[0]
    assert attempt.server_hostname == src.pod, (
        f"{result.path()}: answered by {attempt.server_hostname} on {attempt.server_node}, not by {src.pod} "
        f"itself: with internalTrafficPolicy Local the Service has no other endpoint on {src.node.name}"
    )
