"""JUnit for CI systems, for real: with a fault injected, every failed test case of `--junitxml` carries
its diagnosed cause, node and fix, and the paths it checked, as JSON properties (reports/README.md).

Marked `lab`; holds the shared lab lock and clears the fault before releasing it.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.lab.conftest import lab, lab_lock, run_suite

pytestmark = pytest.mark.lab
NODE = "lab-node-2"


def test_every_failed_case_carries_cause_node_and_fix(lab_kubeconfig: str, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    with lab_lock():
        try:
            # missing-route: lab-node-2 loses its routes to the other nodes' pod CIDRs (vxlan and host-gw alike)
            lab("fault", "missing-route", "--node", NODE)
            done = run_suite(
                lab_kubeconfig,
                "-q",
                "--dial-timeout=0.5",
                f"--junitxml={junit}",
                f"--basetemp={tmp_path / 'bt'}",
                "-k",
                "test_tcp_cross_node or test_udp_cross_node",
                timeout=900,
            )
        finally:
            lab("fault", "clear", check=False)
    assert done.returncode == 1, (done.stdout + done.stderr)[-4000:]
    failed = {
        case.get("name"): {p.get("name"): p.get("value") or "" for p in case.iter("property")}
        for case in ET.parse(junit).getroot().iter("testcase")
        if case.find("failure") is not None
    }
    assert failed and all(NODE in name for name in failed), sorted(failed)
    for name, props in failed.items():
        assert json.loads(props["netconform_cause"])[0] == f"missing-flannel-route@{NODE}", (name, props)
        top = json.loads(props["netconform_findings"])[0]
        assert (top["cause"], top["node"]) == ("missing-flannel-route", NODE), (name, top)
        assert top["title"] and top["fix"], (name, top)
        path = json.loads(props["netconform_path"])
        assert NODE in (path["src_node"], path["dst_node"]) and path["error"], (name, path)
