"""Allure labels and parameters of one check, from what pytest knows about it (no I/O, no allure import).

epic = the network path (one suite file), feature = the case (test function), story = the
variant (node pair, source node, name form). Parameters name nodes, never pods or IPs: those
change every run and would split a test's history, so they are added as *excluded* parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netconform.checks import CHECKS
from netconform.checks import check_of as check_of  # re-exported: plugin.reporting_per_test reads lb.check_of
from netconform.dialing.path import read_paths

# suite module (without test_) -> (epic, severity), in report order (netconform.checks)
PATHS: dict[str, tuple[str, str]] = {c.name: (c.epic, c.severity) for c in CHECKS}
OUTSIDE = "outside the cluster"  # DialResult.source_node of dials made from the machine running pytest


@dataclass
class Labels:
    epic: str
    feature: str
    story: str
    severity: str
    parameters: list[tuple[str, str]] = field(default_factory=list)  # kept in history
    excluded: list[str] = field(default_factory=list)  # raw pytest params to hide from history


def _feature_of(function_name: str) -> str:
    """`test_tcp_cross_node` -> `TCP cross node` (the case in words)."""
    words = function_name.removeprefix("test_").split("_")
    upper = {"tcp", "udp", "dns", "ip", "fqdn", "api"}
    out = [w.upper() if w in upper else w for w in words]
    text = " ".join(out)
    text = re.sub(r"\bclusterip\b", "ClusterIP", text)
    text = re.sub(r"\bnodeport\b", "NodePort", text)
    return text[:1].upper() + text[1:]


def node_name(value: Any) -> str | None:
    """A parameter value that is a node: NodeInfo (has .name) or the node name string of `src`."""
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    return value if isinstance(value, str) else None


def labels_for(module_name: str, function_name: str, params: Mapping[str, Any]) -> Labels:
    check = check_of(module_name)
    epic, severity = PATHS.get(check, (check.replace("_", " ").capitalize(), "normal"))
    src = node_name(params["src"]) if "src" in params else None
    dst = node_name(params["dst"]) if "dst" in params else None
    parameters: list[tuple[str, str]] = []
    excluded: list[str] = []
    if src:
        parameters.append(("source node", src))
        excluded.append("src")
    if dst:
        parameters.append(("destination node", dst))
        excluded.append("dst")  # a NodeInfo: its repr carries annotations that change with every flannel restart
    others = {k: v for k, v in params.items() if k not in ("src", "dst")}
    for key, value in sorted(others.items()):
        parameters.append((key, str(value)))
    if src and dst:
        story = f"{src} → {dst}"
    elif src:
        story = f"from {src}"
    elif dst:
        story = f"{OUTSIDE} → {dst}"
    else:
        story = "cluster"
    if others:
        story += " (" + ", ".join(str(v) for _, v in sorted(others.items())) + ")"
    return Labels(epic, _feature_of(function_name), story, severity, parameters, excluded)


def path_properties(user_properties: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The paths a test recorded (read by dialing.path, the property's only reader), as plain dicts."""
    return [p.to_dict() for p in read_paths(user_properties)]


def cause_id(cause: str) -> str:
    """`stale-flannel-arp@lab-node-2` -> `stale-flannel-arp`."""
    return cause.split("@", 1)[0]


def volatile_parameters(paths: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Per-run values worth seeing in the report but not part of a test's identity."""
    out: list[tuple[str, str]] = []
    for i, p in enumerate(paths):
        suffix = f" #{i + 1}" if len(paths) > 1 else ""
        for key, label in (("src_pod", "source pod"), ("src_ip", "source IP"), ("target", "target")):
            if p.get(key):
                out.append((label + suffix, str(p[key])))
    return out


def root_cause_line(cause_list: list[str], findings: list[dict[str, Any]] | None = None) -> str:
    """The line appended to a failed test's message, which the report categories match on."""
    if not cause_list:
        return "root cause: undiagnosed"
    first = cause_list[0]
    cid, _, node = first.partition("@")
    title = ""
    for f in findings or []:
        if f.get("cause") == cid and (f.get("node") or "") == node:
            title = str(f.get("title") or "")
            break
    where = f" on {node}" if node else ""
    return f"root cause: {cid}{where}" + (f" — {title}" if title else "")
