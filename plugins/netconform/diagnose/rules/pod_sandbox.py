"""A node whose CNI cannot set up a pod: the kubelet's sandbox setup fails there (FailedCreatePodSandBox),
the node's probe pods never become Ready, and every path from or to it fails with `pods_not_started`.
The kubelet's message names the CNI plugin and what went wrong (a binary missing from the CNI bin dir,
flannel's subnet.env absent, ...); the node's CNI config says which plugins it calls (docs/faults.md #21)."""

from __future__ import annotations

import re

from netconform.dialing.path import PODS_NOT_STARTED

from ..evidence import ClusterEvidence
from ..model import Finding, scope
from ._rule import Rule

CAUSE = "pod-sandbox-failing"
# containerd prints the CNI bin dirs as a Go slice: `[/opt/cni/bin /usr/lib/cni]`
MISSING_PLUGIN = re.compile(r'failed to find plugin "([\w.-]{1,64})" in path \[([\w./ -]{0,256})\]')


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for node, message in sorted(ev.facts.sandbox_failures.items()):
        evidence = [f"kubelet on {node}: FailedCreatePodSandBox: ...{message[-300:]}"]
        ne = ev.nodes.get(node)
        if ne is not None and ne.cni_plugin_types:
            evidence.append(f"{node}$ cat /etc/cni/net.d/*.conf*: plugins {', '.join(ne.cni_plugin_types)}")
        missing = MISSING_PLUGIN.search(message)
        if missing:
            plugin, path = missing[1], (missing[2].split() or ["/opt/cni/bin"])[0]
            title = f"{node}: the CNI plugin {plugin} is not in {path}: no pod can start there"
            fix = (
                f"on {node}: install the CNI plugin binary {plugin} into {path} (the CNI's DaemonSet copies "
                "its binaries at start: restart its pod on that node)"
            )
        else:
            title = f"{node}: the kubelet cannot set up pod sandboxes (the CNI fails): no pod can start there"
            fix = f"on {node}: read the CNI pod's log and the kubelet's; the message above is the CNI's own error"
        out.append(
            Finding(
                cause=CAUSE,
                title=title,
                confidence=0.9 if missing else 0.7,
                node=node,
                evidence=tuple(evidence),
                fix=fix,
                explains=(scope(nodes=[node], errors=[PODS_NOT_STARTED]),),
                detail="every pod on that node stays ContainerCreating; pods elsewhere are fine",
            )
        )
    return out


RULE = Rule(cause=CAUSE, category="Pod sandbox failing on a node (CNI: its pods cannot start)", run=rule)
