"""The suite for real, against the lab (or any cluster): marked `lab`, skipped unless
NETCONFORM_LAB_KUBECONFIG points at a kubeconfig. Checks the verdicts, -n 2, and that no
netconform namespace is left behind. The NetworkPolicy check is in it where the lab's CNI enforces
policy (variant.json "cni": cilium, calico), deselected on flannel, as an operator there would
(tests/lab/test_network_policy_lab.py proves its verdict there)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.conftest import REPO, lab_lock, policy_deselect  # the shared lab lock (contract: SHARED LAB PROTOCOL)

SUITES = REPO / "suites"

pytestmark = pytest.mark.lab


def leftover_namespaces(kubeconfig: str) -> list[str]:
    from kubernetes import client, config

    cfg = client.Configuration()  # certificates first: ApiClient builds its TLS pool from the configuration
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    selector = "app.kubernetes.io/managed-by=netconform"
    items = client.CoreV1Api(client.ApiClient(cfg)).list_namespace(label_selector=selector, _request_timeout=10).items
    return [ns.metadata.name for ns in items]


def run_suite(kubeconfig: str, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SUITES),
            f"--kubeconfig={kubeconfig}",
            "--wait-cleanup",
            f"--basetemp={tmp_path / 'bt'}",
            "-p",
            "no:cacheprovider",
            "-rfEs",
            *policy_deselect(),  # the NetworkPolicy check where the lab's CNI enforces it (flannel: deselected)
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return proc, time.monotonic() - started


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist-2"])
def test_suite_passes_on_the_healthy_lab_and_cleans_up(lab_kubeconfig: str, tmp_path: Path, workers: list[str]) -> None:
    with lab_lock():  # nobody else's fault may be in the lab while we expect a healthy one
        proc, wall = run_suite(lab_kubeconfig, tmp_path, *workers)
    out = proc.stdout + proc.stderr
    print(f"suite {' '.join(workers) or 'serial'}: exit {proc.returncode} in {wall:.1f}s\n{out[-3000:]}")
    assert "netconform: removed namespace netconform-" in out, out[-3000:]
    assert proc.returncode == 0, out[-5000:]
    run = re.search(r"Kubernetes v\S+, run ([0-9a-f]+)", out)
    assert run, out[:2000]
    # only ours: other developers' runs may be live on the shared lab
    assert f"netconform-{run.group(1)}" not in leftover_namespaces(lab_kubeconfig)
