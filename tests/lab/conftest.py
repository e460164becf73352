"""Lab e2e tests of reporting and the gate: marked `lab`, skipped unless NETCONFORM_LAB_KUBECONFIG is set.

Anything that injects a fault (or must not see someone else's) holds the shared lab lock
(/tmp/netconform-lab.lock, the one `flock` takes in the SHARED LAB PROTOCOL) and clears its faults
before releasing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB_LOCK = Path("/tmp/netconform-lab.lock")
LOCK_WAIT_S = 1200.0
KUBE = Path("/var/lib/netconform-lab/bin/kube")


@pytest.fixture(scope="session")
def admin_kubeconfig() -> str:
    """The lab's admin kubeconfig: only for what an operator's admin does (RBAC, faults, cleanup checks)."""
    path = os.environ.get("NETCONFORM_LAB_KUBECONFIG")
    if not path:
        pytest.skip("NETCONFORM_LAB_KUBECONFIG is not set (bring the lab up: ci/lab up, or ci/test --lab)")
    if not Path(path).is_file():
        pytest.skip(f"NETCONFORM_LAB_KUBECONFIG={path} does not exist")
    return path


@pytest.fixture(scope="session")
def lab_kubeconfig(admin_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """What netconform runs with in these tests: a token of the suites/rbac.yaml ServiceAccount, as an
    operator would run it (the admin kubeconfig only applies suites/rbac.yaml and asks for the token)."""
    kubectl_admin(admin_kubeconfig, "apply", "-f", str(REPO / "suites" / "rbac.yaml"))
    path = tmp_path_factory.mktemp("rbac") / "kubeconfig"
    path.write_text(token_kubeconfig(admin_kubeconfig, "netconform-system", "netconform", "netconform-sa"))
    return str(path)


def kubectl_admin(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(KUBE), "kubectl", f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


@contextlib.contextmanager
def bound_account(admin: str, role: str, context: str) -> Iterator[str]:
    """A kubeconfig for a fresh ServiceAccount bound to ClusterRole `role` only (after suites/rbac.yaml
    is applied); the account, its namespace and the binding are removed afterwards."""
    scratch = f"nc-rbac-test-{secrets.token_hex(3)}"
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": scratch},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": scratch}],
    }
    path = Path(tempfile.mkdtemp(prefix=scratch)) / "kubeconfig"
    try:
        kubectl_admin(admin, "apply", "-f", str(REPO / "suites" / "rbac.yaml"))
        kubectl_admin(admin, "create", "namespace", scratch)
        kubectl_admin(admin, "-n", scratch, "create", "serviceaccount", "runner")
        kubectl_admin(admin, "apply", "-f", "-", stdin=yaml.safe_dump(binding))
        path.write_text(token_kubeconfig(admin, scratch, "runner", context))
        yield str(path)
    finally:
        subprocess.run([str(KUBE), "kubectl", f"--kubeconfig={admin}", "delete", "clusterrolebinding", scratch,
                        "--ignore-not-found"], capture_output=True, timeout=120)  # fmt: skip
        subprocess.run([str(KUBE), "kubectl", f"--kubeconfig={admin}", "delete", "namespace", scratch,
                        "--ignore-not-found", "--wait=false"], capture_output=True, timeout=120)  # fmt: skip
        shutil.rmtree(path.parent, ignore_errors=True)


def token_kubeconfig(admin: str, namespace: str, account: str, context: str) -> str:
    """A kubeconfig for ServiceAccount namespace/account (a 3h token), pointing where `admin` points."""
    token = kubectl_admin(admin, "-n", namespace, "create", "token", account, "--duration=3h").strip()
    cluster = yaml.safe_load(Path(admin).read_text())["clusters"][0]
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [cluster],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": context, "context": {"cluster": cluster["name"], "user": account}}],
        }
    )


def lock_holders(path: Path = LAB_LOCK, locks: str | None = None) -> set[int]:
    """PIDs holding a flock on `path`, from /proc/locks (waiters are the lines with `->`)."""
    try:
        inode = path.stat().st_ino
        text = locks if locks is not None else Path("/proc/locks").read_text()
    except OSError:
        return set()
    holders = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and "->" not in line and fields[1] == "FLOCK":
            dev_inode = fields[5].rsplit(":", 1)
            if len(dev_inode) == 2 and dev_inode[1] == str(inode):
                holders.add(int(fields[4]))
    return holders


def ancestors(pid: int | None = None) -> set[int]:
    out, pid = set(), pid or os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: ppid (after the parenthesised comm)
        out.add(pid)
    return out


@contextlib.contextmanager
def lab_lock() -> Iterator[None]:
    """The shared lab lock, waited for (bounded); faults are cleared before it is released.

    When a process above us already holds it (`flock ... ci/test`), we run under that hold: taking it
    again would wait for our own parent forever.
    """
    if lock_holders() & ancestors():
        try:
            yield
        finally:
            lab("fault", "clear", check=False)
        return
    with open(LAB_LOCK, "a") as handle:
        # a blocking flock queues with the other flock(1) waiters (polling with LOCK_NB can starve);
        # SIGALRM bounds the wait
        def give_up(signum: int, frame: object) -> None:
            raise TimeoutError

        previous = signal.signal(signal.SIGALRM, give_up)
        signal.alarm(int(LOCK_WAIT_S))
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except TimeoutError:
            pytest.fail(f"waited {LOCK_WAIT_S:.0f}s for the lab lock {LAB_LOCK}")
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        try:
            yield
        finally:
            lab("fault", "clear", check=False)
            fcntl.flock(handle, fcntl.LOCK_UN)


def lab(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(REPO / "ci" / "lab"), *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"ci/lab {' '.join(args)} failed ({done.returncode}): {(done.stderr or done.stdout)[-500:]}")
    return done


VARIANT = Path("/var/lib/netconform-lab/variant.json")
# CNIs that enforce NetworkPolicy: on these the lab expects suites/test_network_policy.py to pass
ENFORCING_CNIS = ("cilium", "calico")
POLICY_SUITE = "suites/test_network_policy.py"


def lab_cni() -> str:
    """The CNI the lab variant runs (variant.json's "cni"; flannel, the default lab's, when not named)."""
    try:
        return str(json.loads(VARIANT.read_text()).get("cni") or "flannel")
    except (OSError, ValueError):
        return "flannel"


def policy_deselect() -> list[str]:
    """On a lab whose CNI enforces no NetworkPolicy (flannel), the NetworkPolicy check is deselected as an
    operator there would (its failure there is proven by tests/lab/test_network_policy_lab.py); `--deselect`
    adds to a caller's own -k."""
    return [] if lab_cni() in ENFORCING_CNIS else [f"--deselect={POLICY_SUITE}"]


def suite_command(kubeconfig: str, *args: str, with_policy: bool = False) -> list[str]:
    """`pytest suites/` as a subprocess against kubeconfig, with no state carried between runs; it waits
    until its namespace is gone (--wait-cleanup), so a test can check that nothing is left. The
    NetworkPolicy check only where the lab's CNI enforces it (`policy_deselect`), or `with_policy`."""
    return [sys.executable, "-m", "pytest", str(REPO / "suites"), "-p", "no:cacheprovider", "-p", "no:randomly",
            f"--kubeconfig={kubeconfig}", "--wait-cleanup", *([] if with_policy else policy_deselect()), *args]  # fmt: skip


def run_suite(
    kubeconfig: str, *args: str, timeout: float = 1200, with_policy: bool = False
) -> subprocess.CompletedProcess[str]:
    cmd = suite_command(kubeconfig, *args, with_policy=with_policy)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
