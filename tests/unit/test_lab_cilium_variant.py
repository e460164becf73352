"""The lab's Cilium variant as recorded and refused (ci/lablib, no lab needed): variant.json names the CNI
(an older file without it is a flannel lab), what `ci/lab up --cni` refuses in one sentence, and the
wrapper module that ci/lab-build/build-cilium.sh builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config() -> Iterator[ModuleType]:
    sys.path.insert(0, str(REPO / "ci"))
    from lablib import config  # noqa: PLC0415 - ci/ is not a package of the project

    yield config
    _forget_lablib()


def _forget_lablib() -> None:
    """ci/ off the path and ci/lablib's modules unloaded: the next import reads LAB_STATE anew."""
    sys.path.remove(str(REPO / "ci"))
    for name in [m for m in sys.modules if m == "lablib" or m.startswith("lablib.")]:
        del sys.modules[name]


def test_variant_json_names_the_cni_and_an_older_one_is_flannel(config: ModuleType) -> None:
    cilium = config.Variant(cni="cilium")
    doc = json.loads(cilium.to_json())
    assert doc["format"] == 1 and doc["cni"] == "cilium"
    assert config.Variant.from_json(cilium.to_json()) == cilium
    older = {"format": 1, "nodes": 3, "proxy_mode": "iptables", "flannel_backend": "vxlan", "ip_family": "ipv4"}
    assert config.Variant.from_json(json.dumps(older)).cni == "flannel"
    assert config.Variant().describe().startswith("3 nodes, kube-proxy iptables, flannel vxlan, ipv4, Kubernetes ")
    assert cilium.describe().startswith("3 nodes, kube-proxy iptables, cilium vxlan, ipv4, Kubernetes ")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--cni", "calico"], "--cni takes flannel or cilium, not 'calico'"),
        (["--cni", "cilium", "--flannel-backend", "host-gw"], "--flannel-backend is flannel's"),
        (["--cni", "cilium", "--ip-family", "dual"], "the Cilium lab is IPv4 only"),
    ],
    ids=["unknown-cni", "cilium-host-gw", "cilium-dual"],
)
def test_up_refuses_what_the_cilium_lab_cannot_be_in_one_sentence(args: list[str], says: str) -> None:
    done = subprocess.run([str(REPO / "ci/lab"), "up", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ci/lab up: ") and says in lines[0], done.stderr


def test_the_wrapper_module_pins_cilium_and_its_own_replaces() -> None:
    """The two replaces of Cilium's go.mod must be in the wrapper: without them `go mod tidy` fails."""
    gomod = (REPO / "ci/lab-build/cilium/go.mod").read_text()
    assert "\nrequire github.com/cilium/cilium v1.15.19\n" in gomod
    assert "go.universe.tf/metallb => github.com/cilium/metallb" in gomod
    assert "sigs.k8s.io/controller-tools => github.com/cilium/controller-tools" in gomod
    tools = (REPO / "ci/lab-build/cilium/tools.go").read_text()
    for cmd in ("daemon", "plugins/cilium-cni", "cilium-dbg"):
        assert f'_ "github.com/cilium/cilium/{cmd}"' in tools


@pytest.fixture
def cilium_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    """A Cilium lab's state in tmp_path (variant.json, one node), ci/lablib's config and cluster over it."""
    monkeypatch.setenv("LAB_STATE", str(tmp_path))
    sys.path.insert(0, str(REPO / "ci"))
    from lablib import cluster, config  # noqa: PLC0415 - ci/ is not a package; imported after LAB_STATE

    (tmp_path / "nodes/lab-node-1").mkdir(parents=True)
    (tmp_path / "pids").mkdir()
    (tmp_path / "variant.json").write_text(config.Variant(cni="cilium").to_json())
    yield config, cluster
    _forget_lablib()


def test_a_running_lab_of_another_shape_is_refused(cilium_state: tuple[ModuleType, ModuleType]) -> None:
    """This very process stands in for a lab part that runs: its pid and start time are on file."""
    config, cluster = cilium_state
    from hostlib.proc import start_time  # noqa: PLC0415 - ci/ is on the path only inside the fixture

    (config.PIDS / "lab-node-1-kubelet.pid").write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
    with pytest.raises(cluster.LabError, match=r"a lab of another shape is up \(3 nodes, kube-proxy iptables, cilium"):
        cluster.refuse_other_shape(config.Variant())


def test_a_stopped_lab_of_another_shape_is_no_one_s(cilium_state: tuple[ModuleType, ModuleType]) -> None:
    """The machine restarted under a Cilium lab: its state is on disk, none of its processes runs (a
    start time no process has); `up` of the default shape goes on and cleans it up (CI on such a machine)."""
    config, cluster = cilium_state
    (config.PIDS / "lab-node-1-kubelet.pid").write_text(f"{os.getpid()} 0\n")
    cluster.refuse_other_shape(config.Variant())
