"""The report for real: the suite against the lab, Allure 3 renders one HTML file, headless Chromium
shows the tests, a failed test's diagnosis (and its pcap) and the node x node matrix."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netconform.report import html
from netconform.reporting.labels import PATHS
from tests.lab.conftest import ENFORCING_CNIS, kubectl_admin, lab, lab_cni, lab_lock, run_suite

pytestmark = pytest.mark.lab
SVG = "{http://www.w3.org/2000/svg}"


def cells(svg: Path, check: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(src, dst) -> (outcome, text in the cell) of one panel of the matrix picture."""
    root = ET.parse(svg).getroot()
    panel = next(g for g in root.iter(f"{SVG}g") if g.get("data-check") == check)
    out = {}
    for g in panel.iter(f"{SVG}g"):
        if g.get("class") == "cell":
            text = g.find(f"{SVG}text")
            out[(g.get("data-src"), g.get("data-dst"))] = (g.get("data-outcome"), text.text if text is not None else "")
    return out


@pytest.fixture(scope="module", autouse=True)
def chromium(lab_kubeconfig: str) -> str:
    """Debian's chromium, installed by ci/report's own installer when missing (a fresh CI machine)."""
    return html.ensure_chromium()


@pytest.fixture(scope="module")
def nodes(admin_kubeconfig: str) -> list[str]:
    """The lab's nodes as it is now (3 by default; `ci/lab up --nodes N` makes more)."""
    names = kubectl_admin(admin_kubeconfig, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").split()
    assert "lab-node-2" in names and len(names) >= 3, names
    return sorted(names)


def test_healthy_run_renders_a_report_with_an_all_green_matrix(
    lab_kubeconfig: str, admin_kubeconfig: str, nodes: list[str], tmp_path: Path
) -> None:
    results, svg = tmp_path / "allure", tmp_path / "matrix.svg"
    with lab_lock():
        run = run_suite(lab_kubeconfig, f"--alluredir={results}", f"--matrix={svg}", "-q")
    assert run.returncode == 0, run.stdout[-3000:]
    # the healthy serial run's cleanup, as test_suite_healthy.py[serial] asserts it: ci/test's default stage runs
    # this run in its place (the variant stage still runs that one), so its namespace is checked here too
    removed = re.findall(r"^netconform: removed namespace (netconform-\w+) \(", run.stdout + run.stderr, re.M)
    assert len(removed) == 1, (run.stdout + run.stderr)[-3000:]
    assert not kubectl_admin(admin_kubeconfig, "get", "namespace", removed[0], "--ignore-not-found", "-o", "name")
    panels = {g.get("data-check") for g in ET.parse(svg).getroot().iter(f"{SVG}g") if g.get("data-check")}
    # one panel per network path the suites check (the NetworkPolicy check is deselected on flannel)
    assert panels == set(PATHS) - (set() if lab_cni() in ENFORCING_CNIS else {"network_policy"})
    outcomes = {o for p in panels for o, _ in cells(svg, p).values()}
    assert outcomes == {"passed"}
    assert len(cells(svg, "pod_to_pod")) == len(nodes) ** 2
    props = (results / "environment.properties").read_text()
    assert "CNI=flannel (vxlan)" in props and f"nodes.count={len(nodes)}" in props
    # a passed dial step carries the result as parameters, no file; no container per test; no reporting error
    found = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    steps = [s for r in found for s in r.get("steps", []) if s["name"].startswith("dial ") and s["status"] == "passed"]
    assert len(steps) >= len(found) // 2, (len(steps), len(found))
    assert all("attempts" in {p["name"] for p in s.get("parameters", [])} for s in steps)
    # the JSON only where a dial got no answer: in a green run, only where the check wanted none (eTP=Local
    # on a node without a local backend: every node but the single pod's, from this machine)
    silent = [s for s in steps if s["name"].endswith("(no answer, as the check expects)")]
    assert len(silent) in (len(nodes) - 1, 2 * (len(nodes) - 1)), [s["name"] for s in silent]  # per IP family
    assert all([a["name"] for a in s.get("attachments", [])] == ["dial result (JSON)"] for s in silent)
    assert not [s["name"] for s in steps if s not in silent and s.get("attachments")]
    assert len(list(results.glob("*-container.json"))) < 10  # the session fixtures' (src, dst, family: none)
    assert not [a for r in found for a in r.get("attachments", []) if a["name"] == "netconform reporting error"]

    rendered = html.render(results, tmp_path / "report.html")
    assert len(rendered.tests) >= 80 and not rendered.failed()
    seen = html.look(
        rendered, {"overview": tmp_path / "overview.png"}, epics=("Pod to pod", "ClusterIP Service", "NodePort", "DNS")
    )
    assert not seen.problems, seen.problems
    assert seen.matrix_px[0] > 500
    assert "Pod to pod" in seen.overview and "Results" in seen.overview


def test_stale_arp_report_shows_diagnosis_pcap_and_a_red_row_and_column(
    lab_kubeconfig: str, nodes: list[str], tmp_path: Path
) -> None:
    results, svg = tmp_path / "allure", tmp_path / "matrix.svg"
    with lab_lock():
        lab("fault", "stale-arp", "--node", "lab-node-2")
        # pod to pod only: every cross-node failure is retried under tcpdump (--capture-pcap), which takes time
        run = run_suite(
            lab_kubeconfig,
            f"--alluredir={results}",
            f"--matrix={svg}",
            "--capture-pcap",
            "--capture-seconds=4",
            "-k",
            "test_pod_to_pod",
            "-q",
        )
    assert run.returncode == 1, run.stdout[-3000:]

    grid = cells(svg, "pod_to_pod")
    for src in nodes:
        for dst in nodes:
            outcome, text = grid[(src, dst)]
            if src != dst and "lab-node-2" in (src, dst):
                assert (outcome, text) == ("failed", "stale-flannel-arp"), (src, dst)
            else:
                assert outcome == "passed", (src, dst)

    pcaps = list(results.glob("*-attachment.pcap"))
    assert pcaps, "no pcap attachment"
    # libpcap magic (either byte order); the packets in it are the capture's business (plugins/diagnose)
    assert all(p.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4") for p in pcaps)
    failed = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    failed = [r for r in failed if r["status"] == "failed"]
    assert len(failed) == 4 * (len(nodes) - 1)  # lab-node-2 <-> every other node, both ways, TCP and UDP
    assert all("root cause: stale-flannel-arp on lab-node-2" in r["statusDetails"]["message"] for r in failed)
    steps = [s for r in failed for s in r["steps"] if s["name"].startswith("dial ") and s["status"] == "failed"]
    assert len(steps) == len(failed)  # each failed test's dial step: failed, the whole result attached
    assert all([a["name"] for a in s.get("attachments", [])] == ["dial result (JSON)"] for s in steps)

    rendered = html.render(results, tmp_path / "report.html")
    shot = Path(os.environ.get("NETCONFORM_REPORT_SCREENSHOT") or tmp_path / "failed.png")
    seen = html.look(rendered, {"failed": shot})
    assert not seen.problems, seen.problems
    assert "most likely: stale-flannel-arp on lab-node-2" in seen.diagnosis
    assert seen.failed_test in rendered.with_pcap
    assert "capture on lab-node-" in seen.diagnosis  # the pcap attachments are listed on the test
    assert shot.stat().st_size > 10_000
