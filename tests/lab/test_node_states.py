"""Nodes the run cannot use (issue 17 item 4): the header names each node left out and why, and a node
whose probe pods never start (its CNI broken) fails its own tests with the reason while the others run,
and the diagnosis names the cause on that node.

The broken CNI is real: the flannel CNI binary is taken out of the node's /opt/cni/bin (the lab bind-mounts
it from the node's directory), so the kubelet's sandbox setup fails there as on a node whose CNI install
went wrong; it is put back before the lock is released."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import kubectl_admin, lab_lock, run_suite

pytestmark = pytest.mark.lab

NODE = "lab-node-2"


def _node_dir(node: str) -> Path:
    lab_state = Path(os.environ.get("NETCONFORM_LAB_KUBECONFIG", "/var/lib/netconform-lab/kubeconfig")).parent
    return lab_state / "nodes" / node


@contextmanager
def cni_binary_removed(node: str) -> Iterator[None]:
    plugin = _node_dir(node) / "cni-bin" / "flannel"
    aside = plugin.with_name("flannel.netconform-test")
    plugin.rename(aside)
    try:
        yield
    finally:
        aside.rename(plugin)


@contextmanager
def cordoned(admin: str, node: str) -> Iterator[None]:
    kubectl_admin(admin, "cordon", node)
    try:
        yield
    finally:
        kubectl_admin(admin, "uncordon", node)


def _outcomes(out: str) -> dict[str, str]:
    """test id -> PASSED/FAILED/SKIPPED from `-rA`."""
    return {m[1]: m[0] for m in re.findall(r"^(PASSED|FAILED|SKIPPED|ERROR) (suites/\S+)", out, re.M)}


def test_a_node_with_a_broken_cni_fails_its_tests_with_the_reason_and_the_rest_run(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path
) -> None:
    with lab_lock(), cni_binary_removed(NODE):
        run = run_suite(
            lab_kubeconfig,
            "--ready-timeout=40s",
            "--no-allure",
            "-rA",
            "-k",
            "pod_to_pod",
            f"--basetemp={tmp_path / 'bt'}",
            "--wait-cleanup",
        )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-4000:]  # failed tests, not a run that could not start (2)
    said = re.search(rf"the probe pods on {NODE} never became Ready, its tests fail: (.*)", out)
    assert said and "FailedCreatePodSandBox" in said[1] and "flannel" in said[1], out[-4000:]
    outcomes = _outcomes(out)
    assert outcomes, out[-4000:]
    touching = {t: o for t, o in outcomes.items() if NODE in t}
    others = {t: o for t, o in outcomes.items() if NODE not in t}
    assert touching and set(touching.values()) == {"FAILED"}, touching
    assert others and set(others.values()) <= {"PASSED", "SKIPPED"} and "PASSED" in others.values(), others
    assert "never became Ready: nc-" in out
    # the diagnosis looked at that node: the kubelet's sandbox error names the missing plugin
    assert re.search(
        rf"pod-sandbox-failing on {NODE} explains {len(touching)} failures: {NODE}: the CNI plugin flannel is not "
        "in /opt/cni/bin",
        out,
    ), out[-4000:]
    assert "have no diagnosed cause" not in out, out[-4000:]


def test_the_header_names_a_cordoned_node_and_the_node_limit(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path
) -> None:
    with lab_lock(), cordoned(admin_kubeconfig, "lab-node-3"):
        run = run_suite(
            lab_kubeconfig,
            "--node-limit=1",
            "--no-allure",
            "--no-diagnose",
            "-k",
            "same_node",
            f"--basetemp={tmp_path / 'bt'}",
        )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "netconform: 1 of 3 nodes selected: lab-node-1 (10.99.0.11)" in out
    assert "netconform: left out cordoned (spec.unschedulable): lab-node-3" in out
    assert "netconform: left out beyond --node-limit 1: lab-node-2" in out
