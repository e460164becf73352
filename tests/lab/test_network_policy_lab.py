"""The NetworkPolicy check on the lab (marked `lab`): on a CNI that enforces no NetworkPolicy (the
default lab's flannel) it fails from every node with the one sentence naming the CNI, the allowed
client passes, and the rest of the suite is untouched; on one that enforces (variant.json "cni":
cilium, calico) it passes. Serial and with -n 2; the run namespace, policies included, is gone after."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.lab.conftest import ENFORCING_CNIS, kubectl_admin, lab_cni, lab_lock, run_suite

pytestmark = pytest.mark.lab
POLICY = "suites/test_network_policy.py"


def outcomes(out: str) -> dict[str, str]:
    """test id -> PASSED/FAILED/ERROR/SKIPPED from `-rA` lines."""
    return {m[1]: m[0] for m in re.findall(rf"^(PASSED|FAILED|SKIPPED|ERROR) ({POLICY}::\S+)", out, re.M)}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist-2"])
def test_the_network_policy_check_judges_the_lab_s_cni(
    lab_kubeconfig: str, admin_kubeconfig: str, tmp_path: Path, workers: list[str]
) -> None:
    nodes = kubectl_admin(admin_kubeconfig, "get", "nodes", "-o", "name").split()
    with lab_lock():
        run = run_suite(lab_kubeconfig, "-k", "network_policy", "-rA", "--no-allure", f"--basetemp={tmp_path / 'bt'}",
                        *workers, with_policy=True)  # fmt: skip
    out = run.stdout + run.stderr
    print(out[-4000:])
    got = outcomes(out)
    denies = {t: o for t, o in got.items() if "test_policy_denies_this_client" in t}
    assert len(denies) == len(nodes) and all(f"from-{n.removeprefix('node/')}" in " ".join(denies) for n in nodes)
    assert [o for t, o in got.items() if "test_policy_lets_the_allowed_client_in" in t] == ["PASSED"]
    if lab_cni() in ENFORCING_CNIS:
        assert run.returncode == 0 and set(denies.values()) == {"PASSED"}, out[-4000:]
    else:
        assert run.returncode == 1 and set(denies.values()) == {"FAILED"}, out[-4000:]
        sentence = f"{lab_cni()} enforces no NetworkPolicy: "
        assert out.count(sentence) >= len(nodes), out[-4000:]  # one per node (and again in the summary)
    ns = re.search(r"removed namespace (netconform-[0-9a-f]+)", out)
    assert ns, out[-2000:]
    # --wait-cleanup waited for the namespace: it, and the policies in it, are gone
    assert ns.group(1) not in kubectl_admin(admin_kubeconfig, "get", "namespaces", "-o", "name")
    assert ns.group(1) not in kubectl_admin(admin_kubeconfig, "get", "networkpolicies", "-A", "-o", "wide")
