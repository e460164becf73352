"""environment.properties: detection from recorded lab data, escaping."""

from __future__ import annotations

import json
from pathlib import Path

from netconform.diagnose.evidence import NodeEvidence
from netconform.kube.inventory import NodeInfo
from netconform.kube.kube_system import KubeSystem
from netconform.reporting import environment as env

DATA = Path(__file__).parent / "data"
RECORDED = Path(__file__).resolve().parents[2] / "data" / "recorded"
LAB_NODES = json.loads((DATA / "lab-nodes.json").read_text())


def test_cni_from_the_labs_flannel_annotations() -> None:
    assert env.detect_cni([n["annotations"] for n in LAB_NODES], []) == "flannel (vxlan)"


def test_cni_from_cilium_node_annotations() -> None:
    assert env.detect_cni([{"network.cilium.io/ipv4-cilium-host": "10.244.0.206"}], []) == "cilium"


def test_cni_from_kube_system_daemonsets_when_nodes_say_nothing() -> None:
    assert env.detect_cni([{}], ["coredns", "cilium"]) == "cilium (DaemonSet kube-system/cilium)"
    assert env.detect_cni([{}], ["kindnet"]).startswith("kindnet")
    assert env.detect_cni([{}], ["something-else"]).startswith("unknown (")


def test_proxy_mode_from_the_labs_json_config_and_kubeadm_yaml() -> None:
    assert env.proxy_mode_from_config((DATA / "lab-kube-proxy.json").read_text()) == "iptables"
    kubeadm = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ""\n'
    assert env.proxy_mode_from_config(kubeadm) == "iptables"
    assert env.proxy_mode_from_config(kubeadm.replace('""', "ipvs")) == "ipvs"
    assert env.proxy_mode_from_config("mode: fast\n") is None  # not a KubeProxyConfiguration


def test_proxy_mode_from_args_and_from_recorded_node_rules() -> None:
    assert env.proxy_mode_from_args(["kube-proxy", "--proxy-mode=nftables"]) == "nftables"
    assert env.proxy_mode_from_args(["--proxy-mode", "ipvs"]) == "ipvs"
    assert env.proxy_mode_from_args(["--v=1"]) is None
    ne = NodeEvidence.from_output("lab-node-1", (RECORDED / "healthy" / "lab-node-1.txt").read_text())
    assert env.proxy_mode_from_iptables(ne.text("iptables"), "", ne.text("link")) == "iptables"
    assert env.proxy_mode_from_iptables("", "", "") is None


def lab_nodes(annotations: bool = False) -> list[NodeInfo]:
    return [
        NodeInfo(
            n["name"],
            "",
            (),
            True,
            True,
            n["nodeInfo"]["kernelVersion"],
            n["nodeInfo"]["osImage"],
            n["nodeInfo"]["kubeletVersion"],
            annotations=n["annotations"] if annotations else {},
        )
        for n in LAB_NODES
    ]


def test_properties_from_the_lab_inventory() -> None:
    nodes = lab_nodes()
    props = env.properties(
        context="netconform-lab",
        server="https://10.99.0.1:6443",
        version="v1.37.2",
        nodes=nodes,
        selected=[n.name for n in nodes],
        cni="flannel (vxlan)",
        proxy_mode="iptables",
        run_id="ab12",
    )
    assert props["nodes.count"] == "3"
    assert props["nodes.kernel"] == LAB_NODES[0]["nodeInfo"]["kernelVersion"]
    assert props["nodes.os"] == "Debian GNU/Linux 12 (bookworm)"
    mixed = env.summarize(["6.1", "6.1", "5.15"])
    assert mixed == "6.1 (x2); 5.15 (x1)"


def test_properties_file_escapes_keys_and_newlines() -> None:
    text = env.render_properties({"a key": "line1\nline2", "CNI": "flannel (vxlan)"})
    assert text == "a\\ key=line1\\nline2\nCNI=flannel (vxlan)\n"


def test_proxy_mode_says_where_it_was_read_in_order() -> None:
    config = (DATA / "lab-kube-proxy.json").read_text()
    kube_proxy_ds = [("kube-proxy", ["kube-proxy", "--proxy-mode=ipvs"]), ("flannel", ["--iface=eth0"])]
    rules = [("lab-node-1", ":KUBE-SERVICES - [0:0]\n", "")]
    assert env.proxy_mode([config], kube_proxy_ds, rules) == "iptables (ConfigMap kube-system/kube-proxy)"
    assert env.proxy_mode(["mode: x\n"], kube_proxy_ds, rules) == "ipvs (DaemonSet kube-system/kube-proxy)"
    assert env.proxy_mode([], kube_proxy_ds[1:], rules) == "iptables (rules on lab-node-1)"
    assert env.proxy_mode([], [], []).startswith("unknown (no kube-proxy ConfigMap or DaemonSet")


def test_cluster_properties_name_cni_and_proxy_mode_from_what_kube_system_showed() -> None:
    def props(nodes: list[NodeInfo], system: KubeSystem, unreadable: bool = False) -> dict[str, str]:
        return env.cluster_properties(
            context="netconform-lab", server="https://10.99.0.1:6443", version="v1.37.2", nodes=nodes,
            selected=[n.name for n in nodes], kube_system=system, node_rules=[], unreadable=unreadable, run_id="ab12",
        )  # fmt: skip

    config = (DATA / "lab-kube-proxy.json").read_text()
    lab = props(lab_nodes(annotations=True), KubeSystem([("kube-flannel-ds", ["/opt/bin/flanneld"])], [config]))
    assert (lab["CNI"], lab["kube-proxy.mode"]) == ("flannel (vxlan)", "iptables (ConfigMap kube-system/kube-proxy)")
    assert lab == env.properties(
        context="netconform-lab", server="https://10.99.0.1:6443", version="v1.37.2", nodes=lab_nodes(True),
        selected=[n["name"] for n in LAB_NODES], cni=lab["CNI"], proxy_mode=lab["kube-proxy.mode"], run_id="ab12",
    )  # fmt: skip
    other = props(lab_nodes(), KubeSystem([("cilium", []), ("kube-proxy", ["kube-proxy", "--proxy-mode=nftables"])]))
    assert other["CNI"] == "cilium (DaemonSet kube-system/cilium)"
    assert other["kube-proxy.mode"] == "nftables (DaemonSet kube-system/kube-proxy)"
    assert props(lab_nodes(), KubeSystem(), unreadable=True)["kube-proxy.mode"].startswith("unknown (not permitted")
