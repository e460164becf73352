"""`ci/lab status`: what runs, the nodes, the versions, memory and the isolation check."""

from __future__ import annotations

import json

from . import cilium, config, control, net, proc
from .cluster import bin_dir, versions
from .proc import LabError


def status() -> tuple[list[str], bool]:
    """What runs, the nodes and the isolation check; healthy only when all of it is fine."""
    lines: list[str] = []
    healthy = True
    if not (config.STATE / "up.json").exists():
        return ["the lab is down"], False
    lines.append(f"variant: {config.variant().describe()} (recorded in {config.VARIANT_FILE})")
    for pidfile in sorted(config.PIDS.glob("*.pid")) if config.PIDS.exists() else []:
        pid = proc.pid_of(pidfile.stem)
        lines.append(f"{pidfile.stem:34} {'running pid ' + str(pid) if pid else 'NOT RUNNING'}")
        healthy = healthy and pid is not None
    try:
        lines.append(control.kubectl(bin_dir(), "get", "nodes", "-o", "wide", timeout=20))
        version_lines, versions_ok = _version_lines()
        lines += version_lines
        healthy = healthy and versions_ok
    except LabError as err:
        lines.append(f"API: {err}")
        healthy = False
    if config.variant().cilium:
        for n in config.nodes(config.node_count()):
            said = cilium.status_brief(n) if proc.pid_of(cilium.agent_name(n)) else "not running"
            lines.append(f"cilium: {n.name} agent {said.splitlines()[-1] if said else 'said nothing'}")
            healthy = healthy and said == "OK"
    lines.append(_memory_line())
    if config.node_count() and config.SWITCH_NS not in net.netns_list():
        # the machine restarted under the lab (or someone removed its namespaces): nothing to check, nothing up
        lines.append(
            f"isolation: not checked: the lab's namespace {config.SWITCH_NS} is gone (`ci/lab down` cleans up)"
        )
        return lines, False
    problems = net.isolation_problems() if config.node_count() else []
    lines.append("isolation: " + ("; ".join(problems) if problems else "sealed (no route or NAT out of the lab)"))
    return lines, healthy and not problems


def _version_lines() -> tuple[list[str], bool]:
    """The versions running: recorded at start (versions.json) and as the API server and kubelets report."""
    recorded = versions()
    server = control.server_version(bin_dir())
    kubelets = {
        item["metadata"]["name"]: item["status"]["nodeInfo"]["kubeletVersion"]
        for item in json.loads(control.kubectl(bin_dir(), "get", "nodes", "-o", "json", timeout=20))["items"]
    }
    ok = server == recorded.get("control-plane")
    lines = [f"version: control plane {recorded.get('control-plane')} (API server reports {server})"]
    for n in config.nodes(config.node_count()):
        reported = kubelets.get(n.name, "not registered")
        ok = ok and reported == recorded.get(n.name)
        lines.append(f"version: {n.name} kubelet + kube-proxy {recorded.get(n.name)} (kubelet reports {reported})")
    return lines, ok


def _rss_mib(relpath: str) -> float:
    """Resident memory of a lab cgroup and everything below it (memory.stat total_rss), in MiB."""
    try:
        stat = (proc.CGROUP_FS / "memory" / relpath / "memory.stat").read_text().split()
        return int(stat[stat.index("total_rss") + 1]) / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _memory_line() -> str:
    nodes = [_rss_mib(n.cgroup) for n in config.nodes(config.node_count())]
    per_node = f", nodes {min(nodes):.0f}-{max(nodes):.0f} MiB each" if nodes else ""
    return (
        f"memory: {_rss_mib(config.CGROUP_ROOT):.0f} MiB resident (cgroup total_rss): control plane "
        f"{_rss_mib(control.CP):.0f} MiB{per_node}"
    )
