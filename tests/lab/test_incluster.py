"""The in-cluster run on the lab: the runner image, ci/incluster/job.yaml, results fetched as documented.

- The runner image `ci/images build runner` writes is in every lab node's containerd with the digest
  the build printed (`ci/lab up` imports it; for a lab that is already up, this test imports it the
  same way, ci/lablib/images.import_into).
- `kubectl apply -f suites/rbac.yaml -f ci/incluster/job.yaml`: the suite runs inside the cluster
  as the netconform ServiceAccount, the pod turns Ready when it has finished, `kubectl cp` fetches
  /results and junit.xml parses with tests and 0 failures or errors; the Job ends Complete (on a CNI
  enforcing no NetworkPolicy, flannel, the NetworkPolicy check's failures saying so are the only ones,
  and the Job ends Failed).
- With `ci/lab fault stale-arp --node lab-node-2` the Job's log names the cause (stale-flannel-arp on
  lab-node-2) in its root-causes summary, and the Job ends Failed (the suite's exit code).

Marked `lab` (skipped unless NETCONFORM_LAB_KUBECONFIG is set); everything that deploys holds the
shared lab lock and leaves no fault, Job or namespace of its own behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.conftest import ENFORCING_CNIS, REPO, lab, lab_cni, lab_lock

pytestmark = pytest.mark.lab

STATE = Path("/var/lib/netconform-lab")
KUBE = STATE / "bin" / "kube"
NS = "netconform-system"
JOB = REPO / "ci/incluster/job.yaml"
NODE = "lab-node-2"
SUITE_TIMEOUT_S = 900


def kubectl(
    kubeconfig: str, *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(KUBE), "kubectl", f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )
    if check and done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed: {(done.stderr or done.stdout).strip()[-800:]}")
    return done


def lablib() -> tuple[Any, Any]:
    """ci/lablib's config and images modules (the lab's own code: node sockets, import_into)."""
    sys.path.insert(0, str(REPO / "ci"))
    from lablib import config, images

    return config, images


@pytest.fixture(scope="module")
def runner_ref(admin_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build the runner image and make sure every node has it, with the digest the build printed.

    NETCONFORM_RUNNER_OUT names a `ci/images build runner --out DIR` made beforehand (keeps the build
    out of the time the lab lock is held)."""
    prebuilt = os.environ.get("NETCONFORM_RUNNER_OUT")
    if prebuilt:
        out = Path(prebuilt)
        ref = (out / "runner.ref").read_text().strip()
    else:
        out = tmp_path_factory.mktemp("images")
        done = subprocess.run(
            [sys.executable, str(REPO / "ci/images"), "build", "runner", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        ref = done.stdout.strip().splitlines()[-1]
    name, digest = ref.split("@")
    config, images = lablib()
    with lab_lock():
        check_nodes(config, images, name, digest, out / "runner.oci.tar")
    return ref


def check_nodes(config: Any, images: Any, name: str, digest: str, archive: Path) -> None:
    for node in config.nodes(config.node_count()):
        listed = subprocess.run(
            ["ctr", "--address", str(node.containerd_sock), "-n", "k8s.io", "images", "ls"],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        if not any(line.split()[:1] == [name] and line.split()[2] == digest for line in listed.splitlines()[1:]):
            images.import_into(node.containerd_sock, [archive])
        listed = subprocess.run(
            ["ctr", "--address", str(node.containerd_sock), "-n", "k8s.io", "images", "ls"],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        row = next((line.split() for line in listed.splitlines()[1:] if line.split()[:1] == [name]), None)
        assert row and row[2] == digest, f"{node.name}: {name} is {row and row[2]}, the build printed {digest}"
        assert set(row[5].split(",")) == {"linux/amd64", "linux/arm64/v8"}, row


def variant() -> dict[str, Any]:
    try:
        return json.loads((STATE / "variant.json").read_text())
    except OSError:
        return {}


@pytest.fixture
def clean_job(admin_kubeconfig: str) -> Iterator[None]:
    kubectl(admin_kubeconfig, "-n", NS, "delete", "job", "netconform", "--ignore-not-found", "--wait=true")
    yield
    kubectl(admin_kubeconfig, "-n", NS, "delete", "job", "netconform", "--ignore-not-found", "--wait=true",
            check=False)  # fmt: skip


def job_with(args: list[str]) -> str:
    """ci/incluster/job.yaml with `args` appended to the container's (docs/images.md: suite options go
    after `--` in `args`), as an operator narrows the run."""
    job = yaml.safe_load(JOB.read_text())
    job["spec"]["template"]["spec"]["containers"][0]["args"] += args
    return yaml.safe_dump(job)


def run_job(admin: str, dest: Path, args: list[str] | None = None) -> tuple[str, str, Path]:
    """Apply the Job as documented (with `args` appended, if any), wait until the suite has finished (pod
    Ready), fetch the log and /results (kubectl cp), release the pod and wait for the Job's end.
    Returns (log, condition, results)."""
    if args:
        kubectl(admin, "apply", "-f", str(REPO / "suites/rbac.yaml"), "-f", "-", stdin=job_with(args))
    else:
        kubectl(admin, "apply", "-f", str(REPO / "suites/rbac.yaml"), "-f", str(JOB))
    deadline = time.monotonic() + 60
    pod = ""
    while not pod and time.monotonic() < deadline:
        pod = kubectl(admin, "-n", NS, "get", "pod", "-l", "job-name=netconform", "-o",
                      "jsonpath={.items[0].metadata.name}", check=False).stdout.strip()  # fmt: skip
        time.sleep(1)
    assert pod, "the Job made no pod within 60s"
    waited = kubectl(admin, "-n", NS, "wait", "--for=condition=ready", f"pod/{pod}", f"--timeout={SUITE_TIMEOUT_S}s",
                     check=False, timeout=SUITE_TIMEOUT_S + 30)  # fmt: skip
    log = kubectl(admin, "-n", NS, "logs", "job/netconform", check=False).stdout
    dest.parent.joinpath("job.log").write_text(log)  # kept with the results in the test's tmp_path
    assert waited.returncode == 0, f"the suite did not finish in {SUITE_TIMEOUT_S}s: {waited.stderr}\n{log[-3000:]}"
    kubectl(admin, "cp", f"{NS}/{pod}:/results", str(dest))
    kubectl(admin, "-n", NS, "exec", pod, "--", "touch", "/results/fetched")
    condition = ""
    deadline = time.monotonic() + 120
    while not condition and time.monotonic() < deadline:
        status = json.loads(kubectl(admin, "-n", NS, "get", "job", "netconform", "-o", "json").stdout)["status"]
        condition = next(
            (
                c["type"]
                for c in status.get("conditions", [])
                if c["type"] in ("Complete", "Failed") and c["status"] == "True"
            ),
            "",
        )
        time.sleep(2)
    return log, condition, dest


def test_job_runs_the_suite_in_cluster_green(
    admin_kubeconfig: str, runner_ref: str, clean_job: None, tmp_path: Path
) -> None:
    with lab_lock():
        log, condition, results = run_job(admin_kubeconfig, tmp_path / "results")
    suite = ET.parse(results / "junit.xml").getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    assert suite is not None
    tests, failures, errors = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors"))
    # the Job runs every check as documented: on a CNI enforcing no NetworkPolicy (flannel) the
    # NetworkPolicy check fails there, saying so, and nothing else may
    policy = [c for c in suite.iter("testcase") if "test_network_policy" in c.get("classname", "")]
    failed = [c for c in policy if c.find("failure") is not None]
    expected = 0 if lab_cni() in ENFORCING_CNIS else len(failed)
    assert all("enforces no NetworkPolicy" in (c.find("failure").get("message") or "") for c in failed), log[-4000:]  # type: ignore[union-attr]
    assert tests > 0 and failures == expected and errors == 0, log[-4000:]
    assert (results / "exit-code").read_text().strip() == ("1" if expected else "0")
    assert any((results / "allure").glob("*-result.json")), "no Allure results in /results/allure"
    assert condition == ("Failed" if expected else "Complete"), log[-3000:]
    assert "kubectl cp netconform-system/" in log


def test_job_names_stale_arp(admin_kubeconfig: str, runner_ref: str, clean_job: None, tmp_path: Path) -> None:
    if variant().get("flannel_backend", "vxlan") != "vxlan":
        pytest.skip("stale-arp needs flannel's vxlan backend")
    with lab_lock():
        try:
            lab("fault", "stale-arp", "--node", NODE)
            # Cut (CI time): the pod-to-pod checks only, not the whole suite, which under stale-arp spent
            # minutes in timeouts (its stability and Service checks at the default 2 s x 100). What this test
            # proves is that the Job carries a failed run's diagnosis and exit code to the operator (log, Failed);
            # that the whole suite's failures under stale-arp rank it first is test_faults.py's
            # test_fault_is_diagnosed[stale-arp], and these very checks under it, from outside, are
            # test_report_lab.py's stale-arp report (every failed test's root cause stale-flannel-arp).
            log, condition, results = run_job(admin_kubeconfig, tmp_path / "results", ["-k", "test_pod_to_pod"])
        finally:
            lab("fault", "clear", check=False)
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines) if "= root causes =" in line), None)
    assert start is not None, log[-4000:]
    summary = lines[start + 1 : start + 4]
    assert summary and summary[0].startswith(f"stale-flannel-arp on {NODE} explains"), "\n".join(summary)
    assert (results / "exit-code").read_text().strip() == "1"
    assert condition == "Failed", log[-3000:]
