# ruff: noqa: F811  (the fake-API fixtures are imported from tests/pytester/conftest.py and used as arguments)
"""The reporting plugin in a real pytest run of the suite against the fake API (tests/pytester):
Allure results where they belong, cleaned once even under xdist, labels, environment, matrix."""

from __future__ import annotations

import json
from pathlib import Path

from tests.pytester.conftest import fake_api, kubeconfig, run_netconform  # noqa: F401  (fixtures)
from tests.pytester.fakeapi import FakeAPIServer


def results(d: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in d.glob("*-result.json")]


def labels_of(result: dict) -> dict[str, str]:
    return {label["name"]: label["value"] for label in result["labels"]}


def test_xdist_run_writes_every_result_once_into_a_dir_cleaned_once(
    run_netconform,
    kubeconfig: Path,
    fake_api: FakeAPIServer,
    tmp_path: Path,
) -> None:
    out = tmp_path / "allure"
    out.mkdir()
    (out / "stale-result.json").write_text("{}")  # from an earlier run: must go
    svg = tmp_path / "matrix.svg"
    fake_api.cluster.faults.drop_to_node = "lab-node-3"
    run = run_netconform(
        f"--kubeconfig={kubeconfig}",
        "-n",
        "2",
        f"--alluredir={out}",
        "--clean-alluredir",
        f"--matrix={svg}",
        "--no-diagnose",
        "-k",
        "test_pod_to_pod or test_dns",
    )
    assert run.ret == 1
    found = results(out)
    assert not (out / "stale-result.json").exists()
    names = sorted(r["name"] for r in found)
    assert len(names) == len(set(names)) == 18 + 15  # pod_to_pod: (3 same + 6 cross) x TCP/UDP; dns: 5 checks x 3 nodes
    assert (out / "categories.json").is_file()
    props = (out / "environment.properties").read_text()
    assert "Kubernetes.version=v1.34.0-fake" in props and "nodes.count=3" in props

    cross = next(r for r in found if r["name"] == "test_tcp_cross_node[lab-node-1-to-lab-node-3]")
    assert labels_of(cross)["epic"] == "Pod to pod"
    assert labels_of(cross)["story"] == "lab-node-1 → lab-node-3"
    params = {p["name"]: p for p in cross["parameters"]}
    assert params["destination node"]["value"] == "'lab-node-3'" and not params["destination node"].get("excluded")
    assert params["dst"]["excluded"] and params["source pod"]["excluded"]
    assert cross["status"] == "failed"
    steps = [s["name"] for s in cross["steps"]]
    assert any(s.startswith("dial tcp lab-node-1 -> 10.244.3.10:8080 (lab-node-3)") for s in steps)
    assert any(s.startswith("setup: probes in namespace netconform-") for s in steps)
    assert any(s.startswith("dialing: one `probe dial` per client pod, 3 pods") for s in steps)
    assert next(s for s in cross["steps"] if s["name"].startswith("dial tcp"))["status"] == "failed"

    picture = svg.read_text()
    # the fake drops everything to lab-node-3: its column is red (TCP and UDP share a cell), nothing else
    assert picture.count("data-outcome='failed'") == 3
    assert "data-src='lab-node-1' data-dst='lab-node-3' data-outcome='failed'" in picture
    globals_ = [json.loads(p.read_text()) for p in out.glob("*-globals.json")]
    assert globals_ and globals_[0]["attachments"][0]["name"] == "node x node matrix"


def test_without_alluredir_results_go_under_reports_and_no_allure_turns_it_off(
    run_netconform,
    kubeconfig: Path,
    fake_api: FakeAPIServer,
    tmp_path: Path,
) -> None:
    run = run_netconform(
        f"--kubeconfig={kubeconfig}", "--no-allure", f"--matrix={tmp_path / 'm.svg'}", "-k", "test_dns"
    )
    assert run.ret == 0
    assert not (tmp_path / "m.svg").exists()
    run.stdout.no_fnmatch_line("netconform: Allure results in *")
