"""The NetworkPolicy check: its pods and policies (only its own pods selected), what each round dials
(every client its own node's target and its peers', the allowed client every node's), the fan-out's
baseline under the same ids, the verdict of a round, and the upgrade gate running it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from netconform.checks import NETWORK_POLICY
from netconform.dialing.model import Attempt, DialResult, Source, SourceOutcome
from netconform.dialing.pairs import choose_pairs
from netconform.dialing.plan import network_policy_plan, network_policy_target, plan_with_gaps
from netconform.dialing.policy import PolicyRun, denied, in_effect
from netconform.gate.phases import suite_command
from netconform.workload.labels import ROLE_LABEL, RUN_LABEL
from netconform.workload.manifests import network_policies, workload_manifests
from tests.unit.test_plan_families import NODES, dual_deployment

PROBE = "ghcr.io/netconform/probe:0.1.0"


def by_pod(plan: dict[Source, list]) -> dict[str, list]:
    return {s.pod: ts for s, ts in plan.items()}


def test_a_round_dials_each_client_s_own_node_and_peers_and_the_allowed_client_every_node() -> None:
    dep = dual_deployment(NODES)
    ring = choose_pairs([n.name for n in NODES], "ring", 1, 0)  # lab-node-1 -> 2, 2 -> 3, 3 -> 1
    plan = by_pod(network_policy_plan(dep, NODES, ring))
    assert set(plan) == {"nc-client-1", "nc-client-2", "nc-client-3", "nc-policy-client-1"}  # one exec each
    from_2 = {t.id: t for t in plan["nc-client-2"]}
    assert set(from_2) == {
        network_policy_target(proto, node, family)
        for proto in ("tcp", "udp")
        for node in ("lab-node-2", "lab-node-3")
        for family in ("ipv4", "ipv6")
    }
    tcp = from_2[network_policy_target("tcp", "lab-node-3", "ipv6")]
    assert (tcp.host, tcp.port, tcp.count, tcp.check) == ("fd10:244:0:3::40", 8080, 1, NETWORK_POLICY)
    assert from_2[network_policy_target("udp", "lab-node-2", "ipv4")].port == 8081
    allowed = {t.id for t in plan["nc-policy-client-1"]}
    assert allowed == {
        network_policy_target(p, n.name, f) for p in ("tcp", "udp") for n in NODES for f in ("ipv4", "ipv6")
    }
    # only the policy targets: never an address another check dials
    policy_ips = {ip for p in dep.policy_targets.values() for ip in p.ips}
    assert {t.host for ts in plan.values() for t in ts} <= policy_ips
    other = {ip for p in [*dep.servers.values(), *dep.clients.values()] for ip in p.ips}
    assert not policy_ips & other


def test_the_fan_out_dials_the_same_ids_before_any_policy() -> None:
    dep = dual_deployment(NODES)
    fan_out, gaps = plan_with_gaps(dep, NODES, stability_count=20)
    rounds = network_policy_plan(dep, NODES)
    assert not gaps
    for source, targets in rounds.items():
        if source.pod == "nc-policy-client-1":
            continue  # not in the fan-out: the API sees it only once the allow policy exists
        baseline = {t.id: t for s, ts in fan_out.items() if s.pod == source.pod for t in ts}
        assert all(baseline[t.id] == t for t in targets)


def test_a_node_without_its_policy_target_is_a_failing_gap_and_not_dialed() -> None:
    dep = dual_deployment(NODES)
    del dep.policy_targets["lab-node-3"]
    dep.unusable = {}
    _, gaps = plan_with_gaps(dep, NODES, stability_count=20)
    gap = gaps[("lab-node-1", network_policy_target("tcp", "lab-node-3", "ipv4"))]
    assert gap.fail and gap.node == "lab-node-3" and "no policy target pod" in gap.reason
    assert all("lab-node-3" not in t.id for ts in network_policy_plan(dep, NODES).values() for t in ts)


def test_the_policies_select_only_the_check_s_own_targets_and_allow_its_client() -> None:
    deny, allow = network_policies("ab12cd34")
    target = {"matchLabels": {ROLE_LABEL: "policy-target", RUN_LABEL: "ab12cd34"}}
    for policy in (deny, allow):
        assert policy["apiVersion"] == "networking.k8s.io/v1" and policy["kind"] == "NetworkPolicy"
        assert policy["spec"]["podSelector"] == target and policy["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny["spec"]  # isolated: every connection in denied
    (rule,) = allow["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {ROLE_LABEL: "policy-client", RUN_LABEL: "ab12cd34"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}, {"protocol": "UDP", "port": 8081}]
    manifests = workload_manifests("ab12cd34", PROBE, ["lab-node-1", "lab-node-2"])
    roles = {m["metadata"]["name"]: m["spec"]["template"]["metadata"]["labels"][ROLE_LABEL]
             for m in manifests if m["kind"] == "DaemonSet"}  # fmt: skip
    assert roles["nc-policy-target"] == "policy-target" and roles["nc-policy-client"] == "policy-client"
    selected = {m["spec"]["selector"][ROLE_LABEL] for m in manifests if m["kind"] == "Service"}
    assert not selected & {"policy-target", "policy-client"}  # no Service, so no other check, reaches them


def test_deselected_the_check_deploys_none_of_its_pods_and_the_fan_out_dials_none_of_its_targets() -> None:
    manifests = workload_manifests("ab12cd34", PROBE, ["lab-node-1", "lab-node-2"], network_policy=False)
    names = {m["metadata"]["name"] for m in manifests}
    assert {"nc-server", "nc-client", "nc-single"} <= names
    assert not names & {"nc-policy-target", "nc-policy-client"}
    dep = dual_deployment(NODES)
    dep.network_policy, dep.policy_targets, dep.policy_client = False, {}, None
    fan_out, gaps = plan_with_gaps(dep, NODES, stability_count=20)
    assert not gaps  # nothing missing is reported: nothing of the check was wanted
    assert fan_out and not [t for ts in fan_out.values() for t in ts if t.check == NETWORK_POLICY]


def result(pod: str, node: str, ok: bool, error: str = "timeout") -> DialResult:
    attempt = Attempt(ok=True, server_hostname="nc-policy-target-x") if ok else Attempt(ok=False, error=error)
    return DialResult(pod, "10.244.1.20", node, network_policy_target("tcp", "lab-node-2"), NETWORK_POLICY, "tcp",
                      "10.244.2.40", 8080, "lab-node-2", [attempt], timeout_ms=2000)  # fmt: skip


def outcome(pod: str, node: str, *results: DialResult, error: str | None = None) -> SourceOutcome:
    return SourceOutcome(Source(pod, "10.244.1.20", node), list(results), error)


def test_a_round_is_in_effect_only_when_every_client_is_denied_and_the_allowed_one_answered() -> None:
    allowed = outcome("nc-policy-client-1", "lab-node-1", result("nc-policy-client-1", "lab-node-1", True))
    timed_out = outcome("nc-client-1", "lab-node-1", result("nc-client-1", "lab-node-1", False))
    refused = outcome("nc-client-2", "lab-node-2", result("nc-client-2", "lab-node-2", False, "refused"))
    through = outcome("nc-client-3", "lab-node-3", result("nc-client-3", "lab-node-3", True))
    assert denied(timed_out.results[0]) and denied(refused.results[0]) and not denied(through.results[0])
    key = "nc-policy-client-1"
    assert in_effect({o.source.pod: o for o in (allowed, timed_out, refused)}, key)
    assert not in_effect({o.source.pod: o for o in (allowed, timed_out, through)}, key)  # one got through
    blocked = outcome(key, "lab-node-1", result(key, "lab-node-1", False))
    assert not in_effect({o.source.pod: o for o in (blocked, timed_out)}, key)  # the allow not yet in effect
    not_run = outcome("nc-client-2", "lab-node-2", error="probe dial exited 1")
    assert not in_effect({o.source.pod: o for o in (allowed, not_run)}, key)  # no probe: nothing shown
    assert not in_effect({}, key)


def test_the_last_round_is_shared_with_workers_as_json() -> None:
    run = PolicyRun(
        {"nc-client-1": outcome("nc-client-1", "lab-node-1", result("nc-client-1", "lab-node-1", False))},
        "nc-policy-client-1",
        True,
        3,
        4.2,
        ["nc-policy-deny", "nc-policy-allow"],
    )
    assert PolicyRun.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_the_gate_runs_every_check_the_network_policy_one_included(tmp_path: Path) -> None:
    cmd = suite_command(tmp_path, "kc", None, ["--pairs=auto"])
    assert not {"-k", "-m", "--deselect", "--ignore"} & {arg.split("=", 1)[0] for arg in cmd[3:]}
    suites = Path(cmd[3])
    # what pytest collects from that path: its test modules, without the plugin (no cluster needed)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(suites), "--collect-only", "-q", "-p", "no:netconform",
         "-p", "no:cacheprovider", "-o", "addopts=", f"--rootdir={suites.parent}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert "suites/test_network_policy.py::test_policy_denies_this_client" in done.stdout, done.stdout[-2000:]
