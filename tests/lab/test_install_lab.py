"""netconform as an operator installs and runs it: the built wheel in a fresh virtualenv outside the
checkout, its console command against the lab; and the probe image the lab runs is the release build.

Marked `lab` (skipped unless NETCONFORM_LAB_KUBECONFIG is set). The suite run holds the shared lab lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import REPO, lab_lock

pytestmark = pytest.mark.lab


def lablib() -> tuple[Any, Any]:
    """ci/lablib's config and images modules (node sockets, what a node's containerd lists)."""
    sys.path.insert(0, str(REPO / "ci"))
    from lablib import config, images

    return config, images


def run(*cmd: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}: {(done.stdout + done.stderr)[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, admin_kubeconfig: str) -> Path:
    """A fresh virtualenv outside the checkout with the wheel `ci/images wheel` builds from this tree."""
    wheel = Path(run(sys.executable, str(REPO / "ci/images"), "wheel", cwd=REPO).strip().splitlines()[-1])
    assert wheel.name.startswith("netconform-") and wheel.suffix == ".whl", wheel
    home = tmp_path_factory.mktemp("operator")
    venv.create(home / "venv", with_pip=True)
    pip = home / "venv/bin/pip"
    run(str(pip), "install", "--quiet", "--disable-pip-version-check", str(wheel), cwd=home, timeout=900)
    return home


def test_the_wheel_installs_a_plugin_named_netconform(installed: Path) -> None:
    python = installed / "venv/bin/python"
    where = run(str(python), "-c", "import netconform, netconform.suites; print(netconform.__file__)", cwd=installed)
    assert "site-packages/netconform/" in where and str(REPO) not in where
    assert (
        run(str(python), "-c", "import importlib.util as u; print(u.find_spec('plugins'))", cwd=installed).strip()
        == "None"
    )
    listed = run(str(installed / "venv/bin/netconform"), "rbac", cwd=installed)
    assert "name: netconform-inspect" in listed
    helped = run(str(python), "-m", "pytest", "--help", cwd=installed)
    assert "--kubeconfig" in helped and "--list-checks" in helped
    assert "--kubeconfig" not in run(str(python), "-m", "pytest", "-p", "no:netconform", "--help", cwd=installed)


def test_the_console_command_runs_the_shipped_suites_green_on_the_lab(installed: Path, lab_kubeconfig: str) -> None:
    env = {"PATH": f"{installed / 'venv/bin'}:/usr/bin:/bin", "HOME": str(installed)}
    with lab_lock():
        done = subprocess.run(
            [
                str(installed / "venv/bin/netconform"),
                "run",
                "--kubeconfig",
                lab_kubeconfig,
                "--",
                "-q",
                "--wait-cleanup",
            ],
            cwd=installed,
            capture_output=True,
            text=True,
            timeout=1200,
            env=env,
        )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert " passed" in out.splitlines()[-1] and "failed" not in out.splitlines()[-1], out[-2000:]
    assert (installed / "reports/allure-results").is_dir()  # results go below the current directory


def test_the_lab_runs_the_probe_digest_the_release_build_prints(tmp_path: Path) -> None:
    ref = run(sys.executable, str(REPO / "ci/images"), "build", "probe", "--out", str(tmp_path), cwd=REPO)
    digest = ref.strip().splitlines()[-1].rsplit("@", 1)[-1]
    config, images = lablib()
    for node in config.nodes(config.node_count()):
        seen, platforms = images.probe_digest(node.containerd_sock)
        assert seen == digest, f"{node.name} runs {seen}, the release build printed {digest}"
        assert {"linux/amd64", "linux/arm64/v8"} <= set(platforms), platforms
    assert os.path.exists(tmp_path / "probe.oci.tar")
