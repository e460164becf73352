"""The whole suite against the fake API: collection from the inventory, one fan-out, verdicts, cleanup."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.pytester.conftest import REPO, SUITES
from tests.pytester.fakeapi import FakeAPIServer, wait_until


def posts(fake: FakeAPIServer, path: str) -> int:
    return sum(1 for method, p in fake.cluster.requests if method == "POST" and p == path)


def test_healthy_cluster_passes_and_leaves_nothing(run_netconform, kubeconfig: Path, fake_api: FakeAPIServer) -> None:
    result = run_netconform(f"--kubeconfig={kubeconfig}", "-v")
    result.stdout.fnmatch_lines(
        [
            "netconform: cluster fake-cluster (context fake) at http://127.0.0.1:*, Kubernetes v1.34.0-fake, run *",
            "netconform: 3 of 3 nodes selected: lab-node-1 (127.0.0.11), lab-node-2 (127.0.0.12), lab-node-3 (127.0.0.13)",
            "*test_tcp_cross_node?lab-node-1-to-lab-node-2? PASSED*",
            "netconform: removed namespace netconform-* (*s)",
            "netconform: * API requests, 3 probe execs",
        ]
    )
    result.assert_outcomes(passed=75, skipped=6)  # the 6 from-this-machine NodePort checks: 127.0.0.1x:10250 refuses
    assert result.ret == 0
    assert fake_api.cluster.namespaces == {}
    assert len(fake_api.cluster.deleted_namespaces) == 1


def test_ids_name_the_nodes_so_k_selects_them(run_netconform, kubeconfig: Path) -> None:
    result = run_netconform(f"--kubeconfig={kubeconfig}", "--collect-only", "-q", "-k", "lab-node-2 and cross_node")
    lines = [line for line in result.stdout.lines if "::" in line]
    assert lines and all("lab-node-2" in line and "cross_node" in line for line in lines)
    # 4 ordered pairs touch lab-node-2 (1->2, 2->1, 2->3, 3->2) x tcp, udp, source IP
    assert len(lines) == 4 * 3


def test_node_selection_and_single_node_skips_cross_node_with_reason(
    run_netconform, kubeconfig: Path, fake_api: FakeAPIServer
) -> None:
    result = run_netconform(f"--kubeconfig={kubeconfig}", "--nodes=pool=odd", "--node-limit=1", "-rs")
    result.stdout.fnmatch_lines(
        [
            "netconform: 1 of 3 nodes selected: lab-node-1 (127.0.0.11)",
            "SKIPPED * only one node selected (lab-node-1): cross-node paths need two",
        ]
    )
    assert result.ret == 0
    pods = [p["metadata"]["name"] for p in fake_api.cluster.pods.get(next(iter(fake_api.cluster.daemonsets))[0], [])]
    assert pods == []  # namespace deleted at the end; the pods went with it
    assert {key[1] for key in fake_api.cluster.daemonsets} == {"nc-server", "nc-client"}


def test_xdist_sets_up_once_dials_once_and_tears_down_once(
    run_netconform, kubeconfig: Path, fake_api: FakeAPIServer
) -> None:
    result = run_netconform(f"--kubeconfig={kubeconfig}", "-n", "2")
    result.assert_outcomes(passed=75, skipped=6)
    assert posts(fake_api, "/api/v1/namespaces") == 1
    assert posts(fake_api, "/apis/apps/v1/namespaces/" + fake_api.cluster.deleted_namespaces[0] + "/daemonsets") == 2
    assert fake_api.cluster.deleted_namespaces and fake_api.cluster.namespaces == {}
    result.stdout.fnmatch_lines(["netconform: * API requests, 3 probe execs"])


def test_failures_are_one_line_with_the_path_and_carry_path_properties(
    run_netconform, kubeconfig: Path, fake_api: FakeAPIServer, tmp_path: Path
) -> None:
    fake_api.cluster.faults.drop_to_node = "lab-node-3"
    junit = tmp_path / "junit.xml"
    result = run_netconform(f"--kubeconfig={kubeconfig}", f"--junitxml={junit}", "-k", "test_pod_to_pod", "--tb=line")
    result.stdout.fnmatch_lines(
        [
            "E   AssertionError: nc-client-1x (10.244.1.20, lab-node-1) -> 10.244.3.10:8080 (lab-node-3): timeout after 2s",
            "E   AssertionError: nc-client-2x (10.244.2.20, lab-node-2) -> UDP 10.244.3.10:8081 (lab-node-3): timeout after 2s",
        ]
    )
    assert result.ret == 1
    failed = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(junit).getroot().iter("testcase")
        if case.find("failure") is not None
    }
    assert "test_tcp_cross_node[lab-node-1-to-lab-node-3]" in failed
    path = failed["test_tcp_cross_node[lab-node-1-to-lab-node-3]"]["netconform_path"]
    for fragment in (
        "'check': 'pod_to_pod'",
        "'src_node': 'lab-node-1'",
        "'dst_node': 'lab-node-3'",
        "'target': '10.244.3.10:8080'",
        "'error': 'timeout'",
    ):
        assert fragment in path


def test_source_ip_mismatch_names_the_address_owner(run_netconform, kubeconfig: Path, fake_api: FakeAPIServer) -> None:
    fake_api.cluster.faults.masquerade_from = "lab-node-1"
    result = run_netconform(f"--kubeconfig={kubeconfig}", "-k", "test_source_ip", "--tb=line")
    result.stdout.fnmatch_lines(
        [
            "E   AssertionError: nc-client-1x (10.244.1.20, lab-node-1) -> 10.244.2.10:8080 (lab-node-2): server saw "
            "10.244.1.0 instead of 10.244.1.20, which is lab-node-1's flannel.1 address (.0 of its podCIDR 10.244.1.0/24)",
        ]
    )
    # cross-node 1->2, 1->3, and ClusterIP from lab-node-1 (its backends sit on other nodes too)
    result.assert_outcomes(passed=9, failed=3)


def test_exec_transport_errors_are_errors_not_failures(
    run_netconform, kubeconfig: Path, fake_api: FakeAPIServer
) -> None:
    fake_api.cluster.faults.exec_broken_on = "lab-node-2"
    result = run_netconform(f"--kubeconfig={kubeconfig}", "-k", "reaches_every_backend")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*could not run the probe in nc-client-2x (lab-node-2): exec failed: 500 websocket: bad handshake (tried 2x)",
        ]
    )


def test_probes_not_ready_fail_once_with_every_reason(
    run_netconform, kubeconfig: Path, fake_api: FakeAPIServer
) -> None:
    fake_api.cluster.faults.not_ready_image = "mirror.local/probe:0.1.0"
    result = run_netconform(
        f"--kubeconfig={kubeconfig}", "--image-repo=mirror.local", "--ready-timeout=1", "-k", "test_dns", "-n", "2"
    )
    # the run stops at the first setup error (one per xdist worker) instead of repeating it 15 times
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert result.parseoutcomes()["errors"] <= 2
    result.stdout.fnmatch_lines(["*Interrupted: netconform: probes not Ready after*"])
    result.stdout.fnmatch_lines(
        [
            "*netconform: probes not Ready after *s: nc-client-1x on lab-node-1, nc-client-2x on lab-node-2, *, "
            "nc-server-3x on lab-node-3: ImagePullBackOff for image mirror.local/probe:0.1.0 "
            "(Back-off pulling image *mirror.local/probe:0.1.0*)",
        ]
    )
    assert posts(fake_api, "/api/v1/namespaces") == 1  # the second worker read the shared error, no second deploy
    assert fake_api.cluster.namespaces == {}


def test_keep_leaves_the_namespace(run_netconform, kubeconfig: Path, fake_api: FakeAPIServer) -> None:
    result = run_netconform(f"--kubeconfig={kubeconfig}", "--keep", "-k", "test_dns")
    result.stdout.fnmatch_lines(["netconform: kept namespace netconform-* (--keep); remove it with: kubectl delete *"])
    assert len(fake_api.cluster.namespaces) == 1 and not fake_api.cluster.deleted_namespaces


def test_next_run_sweeps_leftovers_of_dead_runs(run_netconform, kubeconfig: Path, fake_api: FakeAPIServer) -> None:
    from plugins.probes import namespace_manifest, owner_token

    old = namespace_manifest("0ld0ld00", keep=False).to_dict()
    old["metadata"]["annotations"]["netconform.io/created"] = str(int(time.time()) - 3 * 3600)
    dead = namespace_manifest("deadbeef", keep=False).to_dict()
    dead["metadata"]["annotations"]["netconform.io/owner"] = owner_token().rsplit("/", 1)[0] + "/999999999"
    alive = namespace_manifest("a11ve000", keep=False).to_dict()  # this very test process: alive
    for doc in (old, dead, alive):
        fake_api.cluster.namespaces[doc["metadata"]["name"]] = doc
    result = run_netconform(f"--kubeconfig={kubeconfig}", "-k", "test_dns")
    result.stdout.fnmatch_lines(
        [
            "netconform: removed leftover namespace netconform-0ld0ld00 (created 3h ago)",
            "netconform: removed leftover namespace netconform-deadbeef (its pytest process is gone)",
        ]
    )
    assert list(fake_api.cluster.namespaces) == ["netconform-a11ve000"]


@pytest.mark.parametrize(
    "sig, workers",
    [(signal.SIGTERM, []), (signal.SIGINT, []), (signal.SIGTERM, ["-n", "2"])],
    ids=["sigterm", "sigint", "sigterm-xdist"],
)
def test_interrupted_run_still_removes_its_namespace(
    sig: signal.Signals, workers: list[str], kubeconfig: Path, fake_api: FakeAPIServer, tmp_path: Path
) -> None:
    fake_api.cluster.faults.dial_delay_s = 30
    env = {"PYTHONPATH": f"{REPO / 'tests' / 'pytester'}:{REPO}", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SUITES),
            "-p",
            "fakeexec",
            f"--kubeconfig={kubeconfig}",
            f"--basetemp={tmp_path / 'bt'}",
            "-q",
            *workers,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_until(lambda: fake_api.cluster.pods != {}, timeout_s=30), "the run never deployed"
        time.sleep(0.5)  # let it reach the dial
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 2, out
    assert "KeyboardInterrupt" in out
    assert "removed namespace netconform-" in out
    assert fake_api.cluster.namespaces == {}
