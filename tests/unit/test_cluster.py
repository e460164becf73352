"""Cluster selection, node inventory and the sentences a user gets for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client as k8s

from netconform.errors import UsageError, api_error_sentence
from netconform.kube.connect import resolve_target
from netconform.kube.inventory import (
    NodeInfo,
    explain_no_nodes,
    left_out,
    left_out_lines,
    ownership_of,
    select_nodes,
)


def kubeconfig(path: Path, contexts: tuple[str, ...] = ("lab",), current: str | None = "lab") -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current or "",
        "clusters": [{"name": f"{c}-cluster", "cluster": {"server": f"https://{c}.invalid:6443"}} for c in contexts],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": c, "context": {"cluster": f"{c}-cluster", "user": "u"}} for c in contexts],
    }
    path.write_text(json.dumps(doc))
    return path


def test_kubeconfig_option_wins_over_env(tmp_path: Path) -> None:
    explicit = kubeconfig(tmp_path / "a", ("a",), "a")
    env = kubeconfig(tmp_path / "b", ("b",), "b")
    target = resolve_target(str(explicit), None, {"KUBECONFIG": str(env)})
    assert (target.context, target.cluster_name) == ("a", "a-cluster")
    assert target.configuration.host == "https://a.invalid:6443"


def test_kubeconfig_env_may_list_several_files(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a", ("a",), "a")
    second = kubeconfig(tmp_path / "b", ("b",), None)
    target = resolve_target(None, "b", {"KUBECONFIG": f"{first}:{second}"})
    assert target.configuration.host == "https://b.invalid:6443"


def test_default_kubeconfig_in_home(tmp_path: Path) -> None:
    kubeconfig((tmp_path / ".kube").mkdir() or tmp_path / ".kube" / "config")
    assert resolve_target(None, None, {"HOME": str(tmp_path)}).context == "lab"


def test_no_kubeconfig_anywhere_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^no cluster configured: pass --kubeconfig, set KUBECONFIG"):
        resolve_target(None, None, {"HOME": str(tmp_path)})


def test_missing_kubeconfig_file_names_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"kubeconfig .*/nope \(from \$KUBECONFIG\) does not exist"):
        resolve_target(None, None, {"KUBECONFIG": str(tmp_path / "nope")})


def test_unknown_context_lists_the_known_ones(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", ("lab", "prod"))
    with pytest.raises(UsageError, match=r"context 'staging' is not in kubeconfig .*; known contexts: lab, prod"):
        resolve_target(str(path), "staging", {})


def test_no_current_context_asks_for_one(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", ("lab",), current=None)
    with pytest.raises(UsageError, match=r"has no current-context; pass --context \(lab\)"):
        resolve_target(str(path), None, {})


def test_garbage_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("{not yaml: [")
    with pytest.raises(UsageError, match=r"cannot read kubeconfig"):
        resolve_target(str(path), None, {})


def node(name: str, ip: str, cidr: str, ready: bool = True, schedulable: bool = True) -> NodeInfo:
    return NodeInfo(name, ip, (cidr,), ready, schedulable)


NODES = [
    node("lab-node-1", "10.99.0.11", "10.244.1.0/24"),
    node("lab-node-2", "10.99.0.12", "10.244.2.0/24", ready=False),
    node("lab-node-3", "10.99.0.13", "10.244.3.0/24", schedulable=False),
    node("lab-node-4", "10.99.0.14", "10.244.4.0/24"),
]


def test_only_ready_schedulable_nodes_are_selected_in_name_order() -> None:
    assert [n.name for n in select_nodes(NODES, None, None)] == ["lab-node-1", "lab-node-4"]
    assert [n.name for n in select_nodes(NODES, ["lab-node-4", "lab-node-2"], None)] == ["lab-node-4"]
    assert [n.name for n in select_nodes(NODES, None, 1)] == ["lab-node-1"]


def test_no_usable_node_says_why() -> None:
    assert explain_no_nodes([], None) == "the cluster has no nodes"
    assert explain_no_nodes(NODES, "pool=x") == "no schedulable Ready node matches --node-selector 'pool=x'"
    assert explain_no_nodes(NODES[1:3], None) == (
        "no node is both Ready and schedulable: lab-node-2 (NotReady), lab-node-3 (cordoned)"
    )


def _api_node(name: str, ready: dict[str, str] | None, unschedulable: bool = False) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": "10.244.9.0/24", "unschedulable": unschedulable},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "10.99.0.19"}],
            "conditions": [{"type": "MemoryPressure", "status": "False"}]
            + ([{"type": "Ready", **ready}] if ready else []),
        },
    }


def test_a_node_that_is_not_ready_says_since_when_and_why() -> None:
    hung = NodeInfo.from_json(
        _api_node(
            "lab-node-2",
            {
                "status": "Unknown",
                "lastTransitionTime": "2026-12-03T13:01:22Z",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
            },
        )
    )
    assert not hung.ready
    assert (
        hung.not_ready
        == "Ready Unknown since 2026-12-03T13:01:22Z (NodeStatusUnknown: Kubelet stopped posting node status.)"
    )
    down = NodeInfo.from_json(
        _api_node(
            "n", {"status": "False", "reason": "KubeletNotReady", "message": "container runtime\nnetwork not ready"}
        )
    )
    assert down.not_ready == "NotReady (KubeletNotReady: container runtime network not ready)"
    assert NodeInfo.from_json(_api_node("n", None)).not_ready == "NotReady (no Ready condition reported)"
    assert NodeInfo.from_json(_api_node("n", {"status": "True"})).not_ready == ""
    again = NodeInfo.from_dict(hung.to_dict())  # as xdist workers get it
    assert again.not_ready == hung.not_ready


def test_the_header_names_every_node_left_out_and_why() -> None:
    nodes = [
        node("lab-node-1", "10.99.0.11", "10.244.1.0/24"),
        NodeInfo("lab-node-2", "10.99.0.12", ("10.244.2.0/24",), False, True, not_ready="NotReady since T (x)"),
        node("lab-node-3", "10.99.0.13", "10.244.3.0/24", schedulable=False),
        node("lab-node-4", "10.99.0.14", "10.244.4.0/24"),
        node("lab-node-5", "10.99.0.15", "10.244.5.0/24"),
        node("pool-b-1", "10.99.0.16", "10.244.6.0/24", ready=False),
    ]
    matching = [n.name for n in nodes if n.name.startswith("lab-")]
    chosen = select_nodes(nodes, matching, 2)
    assert [n.name for n in chosen] == ["lab-node-1", "lab-node-4"]
    left = left_out(nodes, chosen, "pool=a", matching, 2)
    assert left == {
        "lab-node-2": "NotReady since T (x)",
        "lab-node-3": "cordoned (spec.unschedulable)",
        "lab-node-5": "beyond --node-limit 2",
        "pool-b-1": "does not match --node-selector 'pool=a'",  # not asked for: its state is not the reason
    }
    assert left_out_lines(left) == [
        "lab-node-2: NotReady since T (x)",
        "cordoned (spec.unschedulable): lab-node-3",
        "beyond --node-limit 2: lab-node-5",
        "does not match --node-selector 'pool=a': pool-b-1",
    ]


def test_a_node_limit_on_a_big_cluster_is_one_header_line() -> None:
    nodes = [node(f"n{i:04}", "10.99.0.1", "10.244.0.0/24") for i in range(1000)]
    left = left_out(nodes, select_nodes(nodes, None, 10), None, None, 10)
    assert left_out_lines(left) == ["beyond --node-limit 10: n0010, n0011, n0012, n0013, n0014 and 985 more"]


@pytest.mark.parametrize(
    "ip, owner",
    [
        ("10.99.0.12", "lab-node-2's InternalIP"),
        ("10.244.1.0", "lab-node-1's flannel.1 address (.0 of its podCIDR 10.244.1.0/24)"),
        ("10.244.4.1", "lab-node-4's cni0 bridge address (.1 of its podCIDR 10.244.4.0/24)"),
        ("10.244.3.7", "a pod address on lab-node-3 (podCIDR 10.244.3.0/24)"),
        ("192.0.2.1", None),
        ("not-an-ip", None),
    ],
)
def test_ownership_of_a_seen_source_ip(ip: str, owner: str | None) -> None:
    assert ownership_of(ip, NODES) == owner


def test_node_from_api_reads_flannel_annotations() -> None:
    api_node = {  # as GET /api/v1/nodes lists it
        "metadata": {
            "name": "lab-node-1",
            "labels": {"a": "b"},
            "annotations": {
                "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"66:1d:2a:00:00:01"}',
                "flannel.alpha.coreos.com/public-ip": "10.99.0.11",
            },
        },
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "10.99.0.11"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kernelVersion": "6.8.0", "osImage": "Debian GNU/Linux 12", "kubeletVersion": "v1.37.2"},
        },
    }
    info = NodeInfo.from_json(api_node)
    assert (info.name, info.internal_ip, info.pod_cidrs, info.ready, info.schedulable) == (
        "lab-node-1",
        "10.99.0.11",
        ("10.244.1.0/24",),
        True,
        True,
    )
    assert info.flannel_vtep_mac == "66:1d:2a:00:00:01" and info.flannel_public_ip == "10.99.0.11"
    assert (info.kernel, info.os_image, info.kubelet_version) == ("6.8.0", "Debian GNU/Linux 12", "v1.37.2")
    assert NodeInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


def test_forbidden_api_error_says_what_was_refused() -> None:
    exc = k8s.ApiException(status=403, reason="Forbidden")
    exc.body = json.dumps({"message": 'namespaces is forbidden: User "alice" cannot create resource "namespaces"'})
    text = api_error_sentence(exc, "create namespace netconform-x")
    assert text.startswith("RBAC forbids netconform to create namespace netconform-x: namespaces is forbidden: User")
