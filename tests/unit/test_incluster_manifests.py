"""ci/incluster: the Job manifest and the Sonobuoy plugin definition parse and keep their contracts.

The Job runs for real on the lab (tests/lab/test_incluster.py); the Sonobuoy plugin cannot run here
(no sonobuoy), so its contract is checked here: a Job-type plugin with JUnit results, written below
/tmp/sonobuoy/results, then the done file naming them.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
INCLUSTER = REPO / "ci/incluster"


def version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def deselected(args: list[str] | str) -> list[str]:
    """The test names a -k "not a and not b" expression leaves out."""
    text = " ".join(args) if isinstance(args, list) else args
    return re.findall(r"not (test_\w+)", text)


def test_job_runs_the_runner_as_the_rbac_service_account() -> None:
    docs = list(yaml.safe_load_all((INCLUSTER / "job.yaml").read_text()))
    assert len(docs) == 1
    job: dict[str, Any] = docs[0]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"] == {**job["metadata"], "name": "netconform", "namespace": "netconform-system"}
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    rbac = list(yaml.safe_load_all((REPO / "suites/rbac.yaml").read_text()))
    accounts = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in rbac if d["kind"] == "ServiceAccount"}
    assert ("netconform-system", pod["serviceAccountName"]) in accounts
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == f"ghcr.io/netconform/runner:{version()}"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    args = container["args"]
    assert args[:2] == ["run", "--"]
    assert "--junitxml=/results/junit.xml" in args and "--alluredir=/results/allure" in args
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/results"]] and "emptyDir" in volumes[mounts["/tmp"]]
    script = container["command"][2]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    assert 'netconform "$@"' in script and 'exit "$rc"' in script and "/results/exit-code" in script
    assert container["readinessProbe"]["exec"]["command"] == ["test", "-e", "/results/exit-code"]
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0
    # the from-this-machine NodePort checks skip by themselves in a pod (plugin.dial: no outside vantage point)
    assert not deselected(args) and "-k" not in args


def test_sonobuoy_plugin_follows_the_plugin_contract() -> None:
    text = (INCLUSTER / "sonobuoy-plugin.yaml").read_text()
    assert "NOT RUN HERE" in text
    plugin = yaml.safe_load(text)
    config = plugin["sonobuoy-config"]
    assert config["driver"] == "Job"
    assert config["plugin-name"] == "netconform"
    assert config["result-format"] == "junit"
    spec = plugin["spec"]
    assert spec["image"] == f"ghcr.io/netconform/runner:{version()}"
    assert {"mountPath": "/tmp/sonobuoy/results", "name": "results"} in spec["volumeMounts"]
    env = {e["name"]: e["value"] for e in spec["env"]}
    assert env["RESULTS_DIR"] == "/tmp/sonobuoy/results"
    script = spec["command"][2]
    assert '--junitxml="$RESULTS_DIR/junit.xml"' in script
    assert script.rstrip().endswith("""printf '%s' "$RESULTS_DIR/junit.xml" > "$RESULTS_DIR/done\"""")
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0
    job = yaml.safe_load((INCLUSTER / "job.yaml").read_text())
    job_args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert deselected(script) == deselected(job_args) == []
