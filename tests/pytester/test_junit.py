"""A run the preflight refuses (exit 4) still leaves the JUnit file a CI system waits for, holding the error."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.pytester.conftest import kubeconfig_for


def the_one_error(junit: Path) -> tuple[ET.Element, ET.Element]:
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("1", "1", "0")
    (case,) = suite.iter("testcase")
    assert (case.get("classname"), case.get("name")) == ("netconform", "preflight")
    error = case.find("error")
    assert error is not None
    return suite, error


def test_no_cluster_writes_junit_with_the_error(run_netconform, tmp_path: Path) -> None:
    junit = tmp_path / "out" / "junit.xml"  # a directory that does not exist yet, as in a fresh CI job
    result = run_netconform(f"--junitxml={junit}")
    assert result.ret == 4
    _, error = the_one_error(junit)
    assert (error.text or "").startswith("netconform: no cluster configured: pass --kubeconfig"), error.text
    assert "no cluster configured" in (error.get("message") or "")


def test_unreachable_api_writes_junit_with_the_error_also_under_xdist(run_netconform, tmp_path: Path) -> None:
    kubeconfig, junit = tmp_path / "kc", tmp_path / "junit.xml"
    kubeconfig.write_text(kubeconfig_for("https://127.0.0.1:1", context="dead"))
    result = run_netconform(f"--kubeconfig={kubeconfig}", "-n", "2", f"--junitxml={junit}")
    assert result.ret == 4
    _, error = the_one_error(junit)
    assert (
        error.text
        == "netconform: cannot reach the Kubernetes API at https://127.0.0.1:1 (context dead): connection refused"
    )


def test_the_file_follows_pytests_junit_options(run_netconform, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    result = run_netconform(f"--junitxml={junit}", "-o", "junit_suite_name=cluster-network", "--junit-prefix=ci")
    assert result.ret == 4
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "cluster-network"
    (case,) = suite.iter("testcase")
    assert case.get("classname") == "ci.netconform"


def test_without_junitxml_nothing_is_written(run_netconform, pytester: pytest.Pytester) -> None:
    result = run_netconform()
    assert result.ret == 4
    assert not list(pytester.path.rglob("*.xml"))
