"""The gate's long-lived connections: what a hold is, the manifests that carry them, what a holder's log says.

O(nodes) pods, all owned by DaemonSets: `gate-server` runs `probe serve` on every selected node and
`gate-holder` runs one `probe hold --plan` per selected node, holding every connection whose source is
that node (its targets come from the ConfigMap `gate-plan`, one key per node). DaemonSets, not
Deployments: a hold belongs to a node (a Deployment's pod would move to another node on a drain and the
pair it watches would silently change), and `kubectl drain --ignore-daemonsets`, as operators run it,
leaves DaemonSet pods where they are instead of refusing (bare pods) or evicting them. A server or holder
that goes anyway (the node is removed, rebooted, its pod deleted) comes back under the same controller,
with a new pod UID or a higher restart count: that is how the check tells churn from a break.

The ClusterIP path to one destination node needs a Service that selects only that node's server; a
DaemonSet's pods share one template, so the gate labels each server pod with its node once it runs
(`patch pods`) and the per-node Service selects that label.

The gate namespace is labelled app.kubernetes.io/managed-by=netconform-gate, not `netconform`: the
suite's sweep of leftover run namespaces selects managed-by=netconform and never sees it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netconform.workload.labels import HOLD_PORT, MANAGED_BY_LABEL
from netconform.workload.manifests import only_on

__all__ = [
    "GATE_LABEL",
    "HOLDER_DS",
    "BREAK_AFTER_S",
    "HOLD_INTERVAL",
    "HOLD_PORT",
    "MANAGED_BY",
    "NAMESPACE",
    "NODE_LABEL",
    "PLAN_CONFIGMAP",
    "ROLE_LABEL",
    "SERVER_DS",
    "VIAS",
    "Hold",
    "HoldState",
    "holder_daemonset",
    "namespace_manifest",
    "parse_holder_log",
    "plan_configmap",
    "planned_holds",
    "server_daemonset",
    "service_manifest",
    "service_name",
]

NAMESPACE = "netconform-gate"
MANAGED_BY = "netconform-gate"
GATE_LABEL = "netconform.io/gate"
ROLE_LABEL = "netconform.io/gate-role"
NODE_LABEL = "netconform.io/gate-node"  # set on each server pod by the gate; its node's Service selects it
SERVER_DS, HOLDER_DS, PLAN_CONFIGMAP = "gate-server", "gate-holder", "gate-plan"
HOLD_INTERVAL = "1s"
# A held line unanswered this long is a break (a socket error is one at once); an echo later than
# HOLD_INTERVAL is latency. 20 s outlasts TCP's own retransmissions of a lost segment (probe/README.md).
BREAK_AFTER_S = 20
VIAS = ("pod", "service")
PLAN_DIR = "/plan"
PLAN_MAX_BYTES = 1_000_000  # a ConfigMap's data may be 1 MiB, with some room for the rest of the object


@dataclass(frozen=True)
class Hold:
    """One long-lived connection: from a holder on `src` to the server on `dst`, by pod IP or ClusterIP."""

    src: str
    dst: str
    via: str  # pod | service
    target: str = ""  # host:port, known once the server pod / Service has an address

    @property
    def id(self) -> str:
        """Its name in the holder's log (unique per source node)."""
        return f"{self.via}:{self.dst}"

    @property
    def key(self) -> str:
        """Unique in the gate."""
        return f"{self.src}/{self.id}"

    @property
    def label(self) -> str:
        return f"{self.src} -> {self.dst} ({'pod IP' if self.via == 'pod' else 'ClusterIP'} {self.target})"


def planned_holds(pairs: Iterable[tuple[str, str]]) -> list[Hold]:
    """Two holds (pod IP, ClusterIP) per ordered pair of nodes, in a stable order."""
    return [Hold(s, d, via) for s, d in sorted(pairs) if s != d for via in VIAS]


def _short(node: str) -> str:
    return node.lower().replace(".", "-")[:40]


def service_name(node: str) -> str:
    return f"gate-{_short(node)}"[:63]


def namespace_manifest(opened_by: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, GATE_LABEL: "open"},
            "annotations": {"netconform.io/opened": str(int(time.time())), "netconform.io/opened-by": opened_by},
        },
    }


def _daemonset(
    name: str, role: str, nodes: list[str], image: str, args: list[str], volume: dict[str, Any] | None
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": role,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod_spec: dict[str, Any] = {
        "affinity": only_on(nodes),  # the --nodes selection, nothing else
        "tolerations": [{"operator": "Exists"}],  # the gate watches every selected node, tainted or not
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 2,
        "containers": [container],
    }
    if volume:
        container["volumeMounts"] = [{"name": "plan", "mountPath": PLAN_DIR, "readOnly": True}]
        pod_spec["volumes"] = [{"name": "plan", **volume}]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "labels": {ROLE_LABEL: role}},
        "spec": {
            "selector": {"matchLabels": {ROLE_LABEL: role}},
            # never rolled by anyone: a new pod only comes when the old one is gone
            "updateStrategy": {"type": "OnDelete"},
            "template": {"metadata": {"labels": {ROLE_LABEL: role}}, "spec": pod_spec},
        },
    }


def server_daemonset(nodes: list[str], image: str) -> dict[str, Any]:
    return _daemonset(SERVER_DS, "server", nodes, image, ["serve", "--hold-port", str(HOLD_PORT)], None)


def holder_daemonset(nodes: list[str], image: str) -> dict[str, Any]:
    # $(NODE_NAME) is expanded by the kubelet: each holder reads its own node's key of the plan
    args = [
        "hold",
        "--plan",
        f"{PLAN_DIR}/$(NODE_NAME)",
        "--interval",
        HOLD_INTERVAL,
        "--break-after",
        f"{BREAK_AFTER_S}s",
        "--duration",
        "0",
    ]
    return _daemonset(HOLDER_DS, "holder", nodes, image, args, {"configMap": {"name": PLAN_CONFIGMAP}})


def plan_configmap(nodes: list[str], holds: list[Hold]) -> dict[str, Any]:
    """One key per selected node (empty plans too: the holder reads its key), `probe hold --plan` format.

    Readable ids (`pod:<node>`) cost size: 1000 nodes with 41-character names, 4 pairs per node, are
    about 745 kB of the 1 MiB a ConfigMap may hold; beyond it the gate says to hold fewer pairs."""
    data = {
        n: json.dumps(
            {"targets": [{"id": h.id, "target": h.target} for h in holds if h.src == n]}, separators=(",", ":")
        )
        for n in nodes
    }
    size = sum(len(k) + len(v) for k, v in data.items())
    if size > PLAN_MAX_BYTES:
        raise ValueError(
            f"the plan of {len(holds)} long-lived connections is {size:,} bytes, more than a ConfigMap holds "
            f"({PLAN_MAX_BYTES:,}): hold fewer pairs (--pairs-per-node) or select fewer nodes"
        )
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": PLAN_CONFIGMAP}, "data": data}


def service_manifest(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(node), "labels": {ROLE_LABEL: "server"}},
        "spec": {
            "selector": {ROLE_LABEL: "server", NODE_LABEL: node},
            "ports": [{"name": "hold", "port": HOLD_PORT, "targetPort": HOLD_PORT, "protocol": "TCP"}],
        },
    }


@dataclass
class HoldState:
    """What the holder's log says about one target (read from the holder's current container)."""

    connects: int = 0
    breaks: list[tuple[str, str]] = field(default_factory=list)  # (at, detail)
    first_connected: str = ""
    summary: dict[str, Any] | None = None  # ok_summary: the hold process ended
    problem: str = ""  # could not read it at all
    last: str = ""  # the last connected/broken event
    late: list[tuple[str, str]] = field(default_factory=list)  # (at, detail): slow echoes, not breaks

    @property
    def established(self) -> bool:
        return self.connects > 0

    @property
    def up(self) -> bool:
        """Connected now (the last event says so and the process still runs)."""
        return self.last == "connected" and self.summary is None and not self.problem

    def since(self, breaks_before: int) -> HoldState:
        """The same state without the first `breaks_before` breaks: what happened after the baseline
        (a ClusterIP hold may miss its first connect while the Service gets its endpoint)."""
        return HoldState(
            self.connects,
            self.breaks[breaks_before:],
            self.first_connected,
            self.summary,
            self.problem,
            self.last,
            self.late,
        )

    @property
    def survived(self) -> bool:
        return self.established and not self.breaks and self.summary is None and not self.problem

    def why_not(self) -> str:
        if self.problem:
            return self.problem
        if not self.established:
            return "never connected"
        if self.breaks:
            at, detail = self.breaks[0]
            more = f" (and {len(self.breaks) - 1} more breaks)" if len(self.breaks) > 1 else ""
            return f"broke at {at}: {detail}{more}"
        if self.summary is not None:
            return "the hold process ended"
        return ""


def parse_holder_log(text: str) -> dict[str, HoldState]:
    """`probe hold --plan` JSON lines (probe/README.md) by target id; other lines (runtime noise) are ignored."""
    states: dict[str, HoldState] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(ev, dict):
            continue
        state = states.setdefault(str(ev.get("id", "")), HoldState())
        kind, at, detail = ev.get("event"), str(ev.get("at", "")), ev.get("detail")
        if kind in ("connected", "broken"):
            state.last = str(kind)
        if kind == "connected":
            state.connects += 1
            state.first_connected = state.first_connected or at
        elif kind == "broken":
            state.breaks.append((at, str(detail)))
        elif kind == "late":
            state.late.append((at, str(detail)))
        elif kind == "ok_summary":
            state.summary = detail if isinstance(detail, dict) else {}
    return states
