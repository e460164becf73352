"""The package as pip installs it: every package listed, the suites and RBAC shipped, the plugin switchable."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from netconform.plugin.checks import list_checks
from netconform.plugin.session import suites_dir

REPO = Path(__file__).resolve().parents[2]


def test_every_package_directory_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    root = REPO / "plugins"
    found = {".".join(p.parent.relative_to(root).parts) for p in root.rglob("__init__.py")} | {"netconform.suites"}
    # A data-only directory (no __init__.py) is a package to setuptools too: listed, or the build warns
    # and a later setuptools drops its files. Each one ships its data.
    data_only = {"netconform.report.allure"}
    assert set(config["packages"]) == found | data_only
    for package in data_only:
        assert (root / package.replace(".", "/")).is_dir() and config["package-data"][package]
    assert (
        config["package-dir"]["netconform.suites"] == "suites"
        and "*.yaml" in config["package-data"]["netconform.suites"]
    )


def test_import_name_is_netconform_and_suites_resolve_to_the_checkout() -> None:
    assert suites_dir() == (REPO / "suites").resolve()
    assert (suites_dir() / "rbac.yaml").is_file()


def test_list_checks_reads_every_suite_without_a_cluster() -> None:
    lines = list_checks(suites_dir())
    files = [line.split(":")[0] for line in lines if not line.startswith(" ")]
    assert files == sorted(p.name for p in suites_dir().glob("test_*.py"))
    assert "    test_tcp_cross_node" in lines


def pytest_help(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_entry_point_loads_the_plugin_into_a_suites_run_only_and_no_netconform_disables_it() -> None:
    assert "--kubeconfig" in pytest_help("suites") and "--list-checks" in pytest_help("suites")
    assert "--kubeconfig" in pytest_help("--pyargs", "netconform.suites")
    assert "--kubeconfig" not in pytest_help() and "--kubeconfig" not in pytest_help("tests")
    assert "--kubeconfig" not in pytest_help("-p", "no:netconform", "suites")


def test_list_checks_option_needs_no_cluster(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "--list-checks"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("test_dns.py: DNS: ")
