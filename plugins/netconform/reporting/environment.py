"""environment.properties: what cluster the run looked at (Kubernetes, CNI, kube-proxy mode, nodes).

Detection reads only what the suite may read anyway (nodes, kube-system workloads); every guess says
where it came from, and "unknown (...)" says why when nothing tells.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from netconform.kube.kube_system import KubeSystem

# node annotation prefix / kube-system DaemonSet name fragment -> CNI
CNI_ANNOTATIONS = (
    ("flannel.alpha.coreos.com/", "flannel"),
    ("projectcalico.org/", "calico"),
    ("network.cilium.io/", "cilium"),  # the agent's node annotations (--annotate-k8s-node)
    ("io.cilium.network.", "cilium"),
    ("io.cilium/", "cilium"),
    ("kube-router.io/", "kube-router"),
)
CNI_DAEMONSETS = (
    ("cilium", "cilium"),
    ("calico-node", "calico"),
    ("flannel", "flannel"),
    ("weave-net", "weave"),
    ("kindnet", "kindnet"),
    ("aws-node", "aws-vpc-cni"),
    ("antrea", "antrea"),
    ("kube-router", "kube-router"),
    ("canal", "canal"),
)


def detect_cni(node_annotations: Iterable[Mapping[str, str]], daemonset_names: Iterable[str]) -> str:
    """`flannel (vxlan)` from node annotations, else from kube-system DaemonSet names, else unknown."""
    annotations = list(node_annotations)
    for prefix, name in CNI_ANNOTATIONS:
        backends = Counter(
            a.get("flannel.alpha.coreos.com/backend-type", "")
            for a in annotations
            if any(k.startswith(prefix) for k in a)
        )
        if backends:
            kinds = [b for b in backends if b]
            return f"{name} ({', '.join(sorted(kinds))})" if name == "flannel" and kinds else name
    for ds in daemonset_names:
        for fragment, name in CNI_DAEMONSETS:
            if fragment in ds:
                return f"{name} (DaemonSet kube-system/{ds})"
    return "unknown (no CNI annotation on the nodes, no known CNI DaemonSet in kube-system)"


def proxy_mode_from_config(text: str) -> str | None:
    """kube-proxy's KubeProxyConfiguration, YAML (kubeadm's ConfigMap key config.conf) or JSON: its mode."""
    match = re.search(r"^mode:\s*['\"]?([A-Za-z]*)['\"]?\s*$", text, re.MULTILINE) or re.search(
        r'"mode"\s*:\s*"([A-Za-z]*)"', text
    )
    if match is None or "KubeProxyConfiguration" not in text:
        return None
    return match.group(1) or "iptables"  # empty mode = the platform default


def proxy_mode_from_args(args: Iterable[str]) -> str | None:
    argv = list(args)
    for i, arg in enumerate(argv):
        if arg.startswith("--proxy-mode="):
            return arg.split("=", 1)[1] or "iptables"
        if arg == "--proxy-mode" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def proxy_mode_from_iptables(iptables_save: str, nft_ruleset: str = "", links: str = "") -> str | None:
    """From a node's own rules (diagnosis evidence): ipvs has kube-ipvs0, nftables a kube-proxy table."""
    if "kube-ipvs0" in links:
        return "ipvs"
    if re.search(r"table ip6? kube-proxy", nft_ruleset):
        return "nftables"
    if ":KUBE-SERVICES" in iptables_save:
        return "iptables"
    return None


def proxy_mode(
    configs: Iterable[str],
    daemonsets: Iterable[tuple[str, list[str]]],
    node_rules: Iterable[tuple[str, str, str]],
    unreadable: bool = False,
) -> str:
    """kube-proxy's mode and where it was read: its ConfigMap texts, else the arguments of a kube-proxy
    DaemonSet (name, argv), else a node's own rules (node, iptables-save, ip link); else unknown, and why."""
    for text in configs:
        mode = proxy_mode_from_config(text)
        if mode:
            return f"{mode} (ConfigMap kube-system/kube-proxy)"
    for name, argv in daemonsets:
        mode = proxy_mode_from_args(argv) if "kube-proxy" in name else None
        if mode:
            return f"{mode} (DaemonSet kube-system/{name})"
    for node, iptables_save, links in node_rules:
        mode = proxy_mode_from_iptables(iptables_save, "", links)
        if mode:
            return f"{mode} (rules on {node})"
    if unreadable:
        return "unknown (not permitted to read kube-system; a diagnosis reads it from the nodes)"
    return "unknown (no kube-proxy ConfigMap or DaemonSet in kube-system; a diagnosis reads it from the nodes)"


def summarize(values: Iterable[str]) -> str:
    """`6.1.0 (lab-node-1, lab-node-2)` style: distinct values with counts, most common first."""
    counts = Counter(v or "unknown" for v in values)
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{v} (x{n})" for v, n in counts.most_common())


def properties(
    *,
    context: str,
    server: str,
    version: str,
    nodes: list[Any],
    selected: list[str],
    cni: str,
    proxy_mode: str,
    run_id: str,
) -> dict[str, str]:
    """Keys as Allure shows them (sorted alphabetically there)."""
    return {
        "Kubernetes.version": version,
        "Kubernetes.context": context,
        "Kubernetes.api": server,
        "CNI": cni,
        "kube-proxy.mode": proxy_mode,
        "nodes.count": str(len(nodes)),
        "nodes.tested": ", ".join(selected),
        "nodes.kernel": summarize(n.kernel for n in nodes),
        "nodes.os": summarize(n.os_image for n in nodes),
        "nodes.kubelet": summarize(n.kubelet_version for n in nodes),
        "netconform.run": run_id,
    }


def cluster_properties(
    *,
    context: str,
    server: str,
    version: str,
    nodes: list[Any],
    selected: list[str],
    kube_system: KubeSystem,
    node_rules: Iterable[tuple[str, str, str]],
    unreadable: bool,
    run_id: str,
) -> dict[str, str]:
    """`properties`, with CNI and kube-proxy mode told by the nodes' annotations, what kube-system showed
    (netconform.kube.kube_system) and the nodes' own rules (node, iptables-save, ip link)."""
    return properties(
        context=context,
        server=server,
        version=version,
        nodes=nodes,
        selected=selected,
        cni=detect_cni([n.annotations for n in nodes], kube_system.daemonset_names),
        proxy_mode=proxy_mode(kube_system.proxy_configs, kube_system.daemonsets, node_rules, unreadable=unreadable),
        run_id=run_id,
    )


def render_properties(props: Mapping[str, str]) -> str:
    """Java .properties: escape what would end or split a key or value."""

    def esc(text: str, key: bool = False) -> str:
        text = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        if key:
            text = re.sub(r"([ =:#!])", r"\\\1", text)
        return text

    return "".join(f"{esc(k, key=True)}={esc(v)}\n" for k, v in props.items())
