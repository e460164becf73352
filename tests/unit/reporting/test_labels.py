"""Allure labels and parameters from what pytest knows about a suite test."""

from __future__ import annotations

import json

import pytest

from netconform.kube.inventory import NodeInfo
from netconform.reporting import labels as lb


def node(name: str) -> NodeInfo:
    return NodeInfo(
        name, "10.99.0.12", ("10.244.2.0/24",), True, True, annotations={"flannel.alpha.coreos.com/backend-data": "x"}
    )


def test_pair_test_epic_feature_story_and_node_parameters() -> None:
    labels = lb.labels_for(
        "suites.test_pod_to_pod", "test_tcp_cross_node", {"src": "lab-node-1", "dst": node("lab-node-2")}
    )
    assert (labels.epic, labels.feature, labels.story, labels.severity) == (
        "Pod to pod",
        "TCP cross node",
        "lab-node-1 → lab-node-2",
        "blocker",
    )
    assert labels.parameters == [("source node", "lab-node-1"), ("destination node", "lab-node-2")]
    # the raw NodeInfo (annotations change with every flannel restart) must not decide the history id
    assert labels.excluded == ["src", "dst"]


def test_source_only_destination_only_and_extra_parameters() -> None:
    dns = lb.labels_for(
        "test_dns", "test_service_name_resolves_to_its_clusterip", {"src": "lab-node-3", "form": "fqdn"}
    )
    assert dns.story == "from lab-node-3 (fqdn)"
    assert ("form", "fqdn") in dns.parameters
    assert dns.feature == "Service name resolves to its ClusterIP"
    outside = lb.labels_for("suites.test_nodeport", "test_nodeport_from_this_machine", {"dst": node("lab-node-1")})
    assert outside.story == "outside the cluster → lab-node-1"
    assert outside.epic == "NodePort"


@pytest.mark.parametrize(
    "module", ["test_pod_to_pod", "test_service", "test_nodeport", "test_stability", "test_source_ip", "test_dns"]
)
def test_every_suite_file_is_a_known_path(module: str) -> None:
    assert lb.labels_for(module, "test_x", {}).epic in {e for e, _ in lb.PATHS.values()}


def test_path_properties_accept_dicts_and_json_and_skip_others() -> None:
    props = [
        ("netconform_path", {"check": "pod_to_pod", "src_node": "lab-node-1"}),
        ("netconform_path", json.dumps({"check": "dns", "src_node": "lab-node-2"})),
        ("netconform_path", "not json"),
        ("success_ratio", 1.0),
    ]
    assert [p["check"] for p in lb.path_properties(props)] == ["pod_to_pod", "dns"]


def test_volatile_parameters_are_pods_ips_and_targets() -> None:
    paths = [{"src_pod": "nc-client-x", "src_ip": "10.244.1.5", "target": "10.244.2.7:8080"}]
    assert lb.volatile_parameters(paths) == [
        ("source pod", "nc-client-x"),
        ("source IP", "10.244.1.5"),
        ("target", "10.244.2.7:8080"),
    ]


def test_root_cause_line_names_cause_node_and_title() -> None:
    causes = ["stale-flannel-arp@lab-node-2", "vxlan-port-blocked"]  # Diagnosis.causes (tests/unit/diagnose)
    findings = [{"cause": "stale-flannel-arp", "node": "lab-node-2", "title": "lab-node-2 has a stale ARP entry"}]
    line = lb.root_cause_line(causes, findings)
    assert line == "root cause: stale-flannel-arp on lab-node-2 — lab-node-2 has a stale ARP entry"
    assert lb.root_cause_line([]) == "root cause: undiagnosed"
    assert lb.cause_id(causes[0]) == "stale-flannel-arp"
