"""The steps that undo a lab fault: what `ci/lab fault clear` runs, recorded in faults.json at injection.

Each step is one of a few typed records, written to JSON as {"kind": ..., its fields} and read back by
`from_json`; `apply(node)` undoes it on the node the fault was injected on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from . import config, control, node, proc
from .cluster import bin_dir, node_bins, run_in_node
from .config import Node
from .proc import LabError, run


@dataclass(frozen=True)
class Command:
    """A command run in the node's network namespace (an `iptables -D`, an `ip route replace`, ...)."""

    argv: tuple[str, ...]
    kind: Literal["command"] = "command"

    def apply(self, target: Node) -> None:
        run_in_node(target, list(self.argv), check=False)


@dataclass(frozen=True)
class SysctlRestore:
    """A sysctl set back to the value it had before the fault."""

    key: str
    value: str
    kind: Literal["sysctl"] = "sysctl"

    def apply(self, target: Node) -> None:
        run_in_node(target, ["sysctl", "-qw", f"{self.key}={self.value}"], check=False)


@dataclass(frozen=True)
class Restart:
    """A node component the fault stopped, started again (it rewrites what the fault removed)."""

    component: Literal["kube-proxy", "flanneld"]
    kind: Literal["restart"] = "restart"

    def apply(self, target: Node) -> None:
        if self.component == "kube-proxy":
            # the version this node runs (an older one after `up --version`, until `upgrade`)
            node.start_kube_proxy(target, node_bins(target.name))
        elif self.component == "flanneld":
            node.start_flanneld(target, bin_dir())
        else:
            raise LabError(f"cannot restart {self.component!r}: the lab restarts kube-proxy or flanneld")


@dataclass(frozen=True)
class StopProcess:
    """A helper process the fault started (one the lab's proc module knows by name)."""

    name: str
    kind: Literal["stop"] = "stop"

    def apply(self, target: Node) -> None:
        proc.stop(self.name)


@dataclass(frozen=True)
class ScaleDeployment:
    """A Deployment scaled back to the replicas it had (cluster-wide: the node is not used)."""

    namespace: str
    name: str
    replicas: int
    kind: Literal["scale"] = "scale"

    def apply(self, target: Node) -> None:
        control.kubectl(bin_dir(), "-n", self.namespace, "scale", "deploy", self.name, f"--replicas={self.replicas}")


@dataclass(frozen=True)
class SwitchCommand:
    """A command run in the lab switch's namespace (nclab-sw): the network between the nodes."""

    argv: tuple[str, ...]
    kind: Literal["switch"] = "switch"

    def apply(self, target: Node) -> None:
        run(["ip", "netns", "exec", config.SWITCH_NS, *self.argv], check=False)


@dataclass(frozen=True)
class ConfigMapRestore:
    """One key of a ConfigMap put back byte for byte, then its Deployment restarted and waited for (bounded):
    CoreDNS's reload plugin would take up to a minute, a restart loads it at once."""

    namespace: str
    name: str
    key: str
    value: str
    deployment: str
    kind: Literal["configmap"] = "configmap"

    def apply(self, target: Node) -> None:
        patch = json.dumps({"data": {self.key: self.value}})
        control.kubectl(bin_dir(), "-n", self.namespace, "patch", "configmap", self.name, "--type=merge", "-p", patch)
        restart_and_wait(self.namespace, self.deployment)


def restart_and_wait(namespace: str, deployment: str) -> None:
    """`rollout restart`, then at most 120 s for the new pods to be ready (what `rollout status` waits for)."""
    control.kubectl(bin_dir(), "-n", namespace, "rollout", "restart", "deployment", deployment)
    control.kubectl(
        bin_dir(), "-n", namespace, "rollout", "status", "deployment", deployment, "--timeout=120s", timeout=150
    )


UndoStep = Command | SysctlRestore | Restart | StopProcess | ScaleDeployment | SwitchCommand | ConfigMapRestore
KINDS: dict[str, type[UndoStep]] = {
    "command": Command,
    "switch": SwitchCommand,
    "configmap": ConfigMapRestore,
    "sysctl": SysctlRestore,
    "restart": Restart,
    "stop": StopProcess,
    "scale": ScaleDeployment,
}


def to_json(step: UndoStep) -> dict[str, Any]:
    return asdict(step)


def from_json(doc: dict[str, Any]) -> UndoStep:
    kind = KINDS.get(str(doc.get("kind")))
    if kind is None:
        raise LabError(f"{config.STATE / 'faults.json'}: unknown undo step {doc}")
    values = {f.name: doc[f.name] for f in fields(kind) if f.name in doc}
    if "argv" in values:
        values["argv"] = tuple(values["argv"])  # JSON has lists; the record is frozen (hashable, comparable)
    return kind(**values)


def from_legacy(argv: list[str]) -> UndoStep:
    """A step as faults.json held it before the typed steps (an argv list, pseudo-commands for the rest):
    read so that a fault injected by an older checkout still clears."""
    match argv:
        case ["netconform-lab", "restart-kube-proxy"]:
            return Restart("kube-proxy")
        case ["netconform-lab", "restart-flanneld"]:
            return Restart("flanneld")
        case ["netconform-lab", "stop", name]:
            return StopProcess(name)
        case ["netconform-lab", "restore-coredns"]:
            return ScaleDeployment("kube-system", "coredns", 2)
    return Command(tuple(argv))
