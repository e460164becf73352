"""The gate's long-lived connections: what a hold is, the manifests of its pods, what its log says.

The gate namespace is labelled app.kubernetes.io/managed-by=netconform-gate, not `netconform`: the
suite's sweep of leftover run namespaces selects managed-by=netconform and never sees it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from netconform.workload.labels import HOLD_PORT, MANAGED_BY_LABEL

__all__ = [
    "GATE_LABEL",
    "HOLD_INTERVAL",
    "HOLD_PORT",
    "MANAGED_BY",
    "NAMESPACE",
    "NODE_LABEL",
    "ROLE_LABEL",
    "Hold",
    "HoldState",
    "hold_manifest",
    "namespace_manifest",
    "parse_hold_log",
    "planned_holds",
    "server_manifest",
    "server_pod_name",
    "service_manifest",
]

NAMESPACE = "netconform-gate"
MANAGED_BY = "netconform-gate"
GATE_LABEL = "netconform.io/gate"
ROLE_LABEL = "netconform.io/gate-role"
NODE_LABEL = "netconform.io/gate-node"
HOLD_INTERVAL = "1s"


@dataclass(frozen=True)
class Hold:
    src: str
    dst: str
    via: str  # pod | service
    pod: str
    target: str = ""  # host:port, known once the server pod / Service has an address

    @property
    def label(self) -> str:
        return f"{self.src} -> {self.dst} ({'pod IP' if self.via == 'pod' else 'ClusterIP'} {self.target})"


def _short(node: str) -> str:
    return node.lower().replace(".", "-")[:40]


def server_pod_name(node: str) -> str:
    return f"gate-server-{_short(node)}"


def _service_name(node: str) -> str:
    return f"gate-{_short(node)}"[:63]


def _hold_pod_name(src: str, dst: str, via: str) -> str:
    return f"hold-{via}-{_short(src)}--{_short(dst)}"


def planned_holds(nodes: list[str]) -> list[Hold]:
    return [
        Hold(s, d, via, _hold_pod_name(s, d, via)) for s in nodes for d in nodes if s != d for via in ("pod", "service")
    ]


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


def _pod(name: str, node: str, role: str, image: str, args: list[str], extra_labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {ROLE_LABEL: role, NODE_LABEL: node, **extra_labels}},
        "spec": {
            "nodeName": node,  # pinned: the gate watches this node's paths through the upgrade
            "restartPolicy": "Never",  # a restarted hold would hide a break
            "tolerations": [{"operator": "Exists"}],
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": role,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": args,
                    "env": [{"name": "NODE_NAME", "value": node}],
                    "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}},
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def server_manifest(node: str, image: str) -> dict[str, Any]:
    return _pod(server_pod_name(node), node, "server", image, ["serve", "--hold-port", str(HOLD_PORT)], {})


def service_manifest(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": _service_name(node)},
        "spec": {
            "selector": {ROLE_LABEL: "server", NODE_LABEL: node},
            "ports": [{"name": "hold", "port": HOLD_PORT, "targetPort": HOLD_PORT, "protocol": "TCP"}],
        },
    }


def hold_manifest(hold: Hold, image: str) -> dict[str, Any]:
    args = ["hold", "--target", hold.target, "--interval", HOLD_INTERVAL, "--duration", "0"]
    return _pod(hold.pod, hold.src, "hold", image, args, {"netconform.io/gate-dst": hold.dst})


@dataclass
class HoldState:
    """What one hold pod's log and phase say."""

    connects: int = 0
    breaks: list[tuple[str, str]] = field(default_factory=list)  # (at, detail)
    first_connected: str = ""
    summary: dict[str, Any] | None = None  # ok_summary: the hold process ended
    phase: str = ""
    problem: str = ""  # could not read it at all

    @property
    def established(self) -> bool:
        return self.connects > 0

    @property
    def survived(self) -> bool:
        return (
            self.established
            and not self.breaks
            and self.summary is None
            and self.phase == "Running"
            and not self.problem
        )

    def why_not(self) -> str:
        if self.problem:
            return self.problem
        if not self.established:
            return "never connected"
        if self.breaks:
            at, detail = self.breaks[0]
            more = f" (and {len(self.breaks) - 1} more breaks)" if len(self.breaks) > 1 else ""
            return f"broke at {at}: {detail}{more}"
        if self.summary is not None or self.phase != "Running":
            return f"the hold process ended (pod {self.phase or 'gone'})"
        return ""


def parse_hold_log(text: str) -> HoldState:
    """`probe hold` JSON lines (probe/README.md); other lines (runtime noise) are ignored."""
    state = HoldState()
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        kind, at, detail = ev.get("event"), str(ev.get("at", "")), ev.get("detail")
        if kind == "connected":
            state.connects += 1
            state.first_connected = state.first_connected or at
        elif kind == "broken":
            state.breaks.append((at, str(detail)))
        elif kind == "ok_summary":
            state.summary = detail if isinstance(detail, dict) else {}
    return state
