"""The Service check's worst case, for real: one backend among many, chosen by kube-proxy once in N.

The suite's Service has one backend per node, so on the 3-node lab each is chosen one time in three;
the case the bound in netconform.dialing.coverage is computed for is the rarest backend of a big
cluster. This builds it at any lab size: a Service over BULK + 1 probe servers, BULK of them on the
client's node and one (the rare backend) on another node, so kube-proxy sends each connection there
with probability 1/(BULK + 1). It dials that Service with the suite's own code: the target of the
Service check (plan.service_coverage_target), its bound (coverage.backend_tries for the Service's
real backend count), the probe over the pod exec as the suite's ServiceAccount (fanout.dial_from,
the lab_kubeconfig of suites/rbac.yaml) and the check's verdict (coverage.backend_verdict, which
suites/test_service.py asserts). Three outcomes:

  reachable       every backend answers, the rare one included, within the bound: no verdict
  node broken     the rare backend's node drops forwarded pod traffic (`ci/lab fault forward-drop`):
                  connections to it time out, the probe stops after a few; the verdict names it and
                  the connections it rests on
  never chosen    the Service stops routing to the rare pod while it runs (it leaves the Service's
                  selector: to the check this is what stale kube-proxy rules or a stale EndpointSlice
                  look like): every connection succeeds, the probe dials the whole bound, and the
                  verdict names it with that count and the chance it is wrong

Marked `lab`, skipped unless NETCONFORM_LAB_KUBECONFIG is set; needs two schedulable nodes, works at
any node count. The module holds the lab lock from setup to teardown (its fault is cleared before
the lock is released, by lab_lock).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from netconform.dialing import coverage
from netconform.dialing.fanout import dial_from
from netconform.dialing.model import DialResult, Source
from netconform.dialing.plan import service_coverage_target, service_target
from netconform.workload.images import DEFAULT_IMAGES
from netconform.workload.labels import HTTP_PORT, UDP_PORT
from netconform.workload.manifests import only_on, workload_manifests
from tests.lab.conftest import kubectl_admin, lab, lab_lock

pytestmark = pytest.mark.lab

BULK = 19  # the rare backend gets 1 connection in BULK + 1 = 20
VERDICTS = 3  # dials judged by this module: their bound keeps all of them below 1e-9 together
TIMEOUT_MS = 2000  # the suite's --dial-timeout default
READY_WAIT_S = 240.0
RULES_WAIT_S = 60.0  # kube-proxy's sync after the slices changed (1 s min-sync-period; slower under load)
SVC_LABEL = "netconform-lab-test/in-service"  # the Service selects it; the ReplicaSets select on `set`


@dataclass(frozen=True)
class RareLab:
    namespace: str
    service_ip: str
    client: Source
    expected: dict[str, str]  # every backend pod -> its node (the set that exists)
    rare: str
    rare_ip: str
    rare_node: str
    tries: int  # coverage.backend_tries for len(expected) backends


def _ready_nodes(admin: str) -> list[str]:
    items = json.loads(kubectl_admin(admin, "get", "nodes", "-o", "json"))["items"]
    ready = [
        n["metadata"]["name"]
        for n in items
        if not n["spec"].get("unschedulable")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    ]
    return sorted(ready)


def _deployment(name: str, replicas: int, node: str, in_service: bool) -> dict[str, Any]:
    """A Deployment of the suite's own probe pod (its nc-server template), pinned to `node`."""
    server = next(
        m for m in workload_manifests("x", DEFAULT_IMAGES["probe"], [node]) if m["metadata"]["name"] == "nc-server"
    )
    template = server["spec"]["template"]
    labels = {"set": name, **({SVC_LABEL: "yes"} if in_service else {})}
    template["metadata"] = {"labels": labels}
    template["spec"]["affinity"] = only_on([node])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"set": name}}, "template": template},
    }


def _service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "rare-set"},
        "spec": {
            "selector": {SVC_LABEL: "yes"},
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"},
                {"name": "udp", "port": UDP_PORT, "targetPort": UDP_PORT, "protocol": "UDP"},
            ],
        },
    }


def _pods(admin: str, namespace: str, selector: str) -> list[dict[str, Any]]:
    return list(json.loads(kubectl_admin(admin, "-n", namespace, "get", "pods", "-l", selector, "-o", "json"))["items"])


def _ready_endpoints(admin: str, namespace: str) -> dict[str, str]:
    """The Service's ready endpoints: pod name -> its address."""
    slices = json.loads(
        kubectl_admin(
            admin, "-n", namespace, "get", "endpointslices", "-l", "kubernetes.io/service-name=rare-set", "-o", "json"
        )  # fmt: skip
    )["items"]
    return {
        ep["targetRef"]["name"]: ep["addresses"][0]
        for s in slices
        for ep in s.get("endpoints") or []
        if ep.get("conditions", {}).get("ready") and ep.get("targetRef")
    }


def _on_node(node: str, *cmd: str) -> str:
    """A command's output in a lab node's network namespace."""
    netns = f"nclab-{node.removeprefix('lab-')}"  # lab-node-N runs in namespace nclab-node-N (ci/lablib/config.py)
    return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, timeout=30).stdout


def _kube_proxy_rules(node: str) -> str:
    """The NAT rules kube-proxy wrote on a lab node (iptables and nftables: whichever mode runs)."""
    return "\n".join(_on_node(node, *cmd) for cmd in (["iptables-save", "-t", "nat"], ["nft", "list", "ruleset"]))


def _flows_toward(node: str, ip: str) -> list[str]:
    """The node's conntrack entries of TCP flows NAT'ed to `ip` (their replies come from it)."""
    return _on_node(node, "conntrack", "-L", "-p", "tcp", "--reply-src", ip).splitlines()


def _wait_endpoints(admin: str, namespace: str, want: set[str], node: str, gone: frozenset[str] = frozenset()) -> None:
    """Until the Service's ready endpoints are exactly `want` and kube-proxy on `node` (the client's) has
    programmed them: every one's address:port in its rules, none of the `gone` addresses (bounded).
    A fixed pause was not enough under load: a test once found a removed backend still answering."""
    deadline = time.monotonic() + READY_WAIT_S
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = _ready_endpoints(admin, namespace)
        if set(seen) == want:
            break
        time.sleep(1.0)
    else:
        pytest.fail(f"Service rare-set in {namespace}: ready endpoints {sorted(seen)} != {sorted(want)} "
                    f"after {READY_WAIT_S:.0f}s")  # fmt: skip
    deadline = time.monotonic() + RULES_WAIT_S
    missing, stale = [], []
    while time.monotonic() < deadline:
        rules = _kube_proxy_rules(node)
        missing = [ip for ip in seen.values() if f"{ip}:{HTTP_PORT}" not in rules]
        stale = [ip for ip in gone if f"{ip}:{HTTP_PORT}" in rules]
        if not missing and not stale:
            return
        time.sleep(0.5)
    pytest.fail(f"kube-proxy on {node} did not program rare-set within {RULES_WAIT_S:.0f}s: "
                f"missing {missing}, still there {stale}")  # fmt: skip


@pytest.fixture(scope="module")
def rare_lab(admin_kubeconfig: str, lab_kubeconfig: str) -> Iterator[RareLab]:
    admin = admin_kubeconfig
    with lab_lock():
        nodes = _ready_nodes(admin)
        if len(nodes) < 2:
            pytest.skip(f"needs two schedulable Ready nodes, the lab has {nodes}")
        home, far = nodes[0], nodes[-1]
        namespace = f"nc-lab-rare-{secrets.token_hex(3)}"
        kubectl_admin(admin, "create", "namespace", namespace)
        try:
            manifests = [
                _deployment("bulk", BULK, home, in_service=True),
                _deployment("rare", 1, far, in_service=True),
                _deployment("client", 1, home, in_service=False),
                _service(),
            ]
            kubectl_admin(admin, "-n", namespace, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1",
                          "kind": "List", "items": manifests}))  # fmt: skip
            kubectl_admin(admin, "-n", namespace, "wait", "--for=condition=Available", "deployment", "--all",
                          f"--timeout={READY_WAIT_S:.0f}s")  # fmt: skip
            backends = _pods(admin, namespace, "set in (bulk,rare)")
            expected = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in backends}
            assert len(expected) == BULK + 1, expected
            _wait_endpoints(admin, namespace, set(expected), home)
            ((rare, rare_ip),) = [
                (p["metadata"]["name"], p["status"]["podIP"])
                for p in backends
                if p["metadata"]["labels"]["set"] == "rare"
            ]
            (client,) = _pods(admin, namespace, "set=client")
            svc = json.loads(kubectl_admin(admin, "-n", namespace, "get", "service", "rare-set", "-o", "json"))
            yield RareLab(
                namespace=namespace,
                service_ip=svc["spec"]["clusterIP"],
                client=Source(client["metadata"]["name"], client["status"]["podIP"], client["spec"]["nodeName"]),
                expected=expected,
                rare=rare,
                rare_ip=rare_ip,
                rare_node=far,
                tries=coverage.backend_tries(len(expected), checks=VERDICTS),
            )
        finally:
            kubectl_admin(admin, "delete", "namespace", namespace, "--wait=true", "--timeout=180s")


def _client_config(lab_kubeconfig: str) -> Any:
    """The kubernetes client configuration of the suite's account (what dial_from execs with)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=lab_kubeconfig, client_configuration=cfg)
    return cfg


def dial(lab_kubeconfig: str, rl: RareLab) -> tuple[DialResult, str | None]:
    """The Service check's dial and verdict, as the suite makes them, from the client pod as the suite's account."""
    cfg = _client_config(lab_kubeconfig)
    tid = service_target("tcp")
    target = service_coverage_target(
        tid, "tcp", rl.service_ip, HTTP_PORT, len(rl.expected), rl.tries, "ClusterIP rare-set"
    )
    outcome = dial_from(cfg, rl.namespace, rl.client, [target], TIMEOUT_MS)
    assert outcome.error is None, outcome.error
    (result,) = outcome.results
    picks = sum(1 for a in result.attempts if a.server_hostname == rl.rare)
    print(f"{len(result.attempts)} connections (bound {rl.tries}), stopped: {result.stopped}, "
          f"{len(result.failures)} failed, the rare backend answered {picks}")  # fmt: skip
    return result, coverage.backend_verdict(result, rl.expected)


def test_the_rare_backend_reachable_passes(lab_kubeconfig: str, admin_kubeconfig: str, rare_lab: RareLab) -> None:
    _wait_endpoints(admin_kubeconfig, rare_lab.namespace, set(rare_lab.expected), rare_lab.client.node)
    result, verdict = dial(lab_kubeconfig, rare_lab)
    assert verdict is None, verdict
    assert rare_lab.rare in result.backends and result.stopped == "backends"
    assert len(result.attempts) <= rare_lab.tries


def test_the_rare_backend_behind_a_broken_node_fails_naming_it(
    lab_kubeconfig: str, admin_kubeconfig: str, rare_lab: RareLab
) -> None:
    _wait_endpoints(admin_kubeconfig, rare_lab.namespace, set(rare_lab.expected), rare_lab.client.node)
    try:
        lab("fault", "forward-drop", "--node", rare_lab.rare_node)
        result, verdict = dial(lab_kubeconfig, rare_lab)
    finally:
        # clear also drops every node's unanswered (SYN_SENT) conntrack entries, this fault's residue: a later
        # connect from one of their source ports would follow the old DNAT to the rare backend (faults.py)
        lab("fault", "clear", check=False)
    print(verdict)
    assert verdict is not None
    assert f"{rare_lab.rare} ({rare_lab.rare_node})" in verdict, verdict
    if result.failures:  # the usual case: connections to it time out and the probe stops after a few
        assert f"{len(result.failures)}/{len(result.attempts)} attempts failed: timeout" in verdict, verdict
        assert "never answered before the probe stopped: " in verdict, verdict
    else:  # the kubelet marked it unready first: then nothing routes there, and the bound decides
        assert f"{rare_lab.tries} connections reached" in verdict, verdict


def test_the_rare_backend_the_service_never_picks_fails_after_the_bound(
    lab_kubeconfig: str, admin_kubeconfig: str, rare_lab: RareLab
) -> None:
    rl = rare_lab
    kubectl_admin(admin_kubeconfig, "-n", rl.namespace, "label", "pod", rl.rare, f"{SVC_LABEL}-")
    try:
        _wait_endpoints(admin_kubeconfig, rl.namespace, set(rl.expected) - {rl.rare}, rl.client.node,
                        frozenset({rl.rare_ip}))  # fmt: skip
        # Only entries in TIME_WAIT may stay: a SYN from their port reopens the flow with a fresh DNAT.
        live = [f for f in _flows_toward(rl.client.node, rl.rare_ip) if " TIME_WAIT " not in f]
        assert not live, f"conntrack on {rl.client.node} still routes these flows to the removed backend: {live}"
        result, verdict = dial(lab_kubeconfig, rl)
    finally:
        kubectl_admin(admin_kubeconfig, "-n", rl.namespace, "label", "pod", rl.rare, f"{SVC_LABEL}=yes")
    print(verdict)
    n = len(rl.expected)
    assert not result.failures and result.stopped == "count" and len(result.attempts) == rl.tries
    assert verdict is not None
    assert f"{rl.tries} connections reached {n - 1}/{n} backends; never answered: {rl.rare} ({rl.rare_node})" in verdict
    assert f"probability < {coverage.false_failure_bound(n, rl.tries):.0e}" in verdict, verdict
