"""The lab's Kubernetes versions (ci/lablib, no lab needed): which versions it builds, what
`ci/lab up --version` and `ci/lab upgrade` accept and refuse, in one sentence each."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "ci/lab-build"


@pytest.fixture
def lablib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType, Path]]:
    """ci/lablib's config and upgrade modules with the lab's state directory in tmp_path."""
    monkeypatch.syspath_prepend(str(REPO / "ci"))
    from lablib import config, upgrade  # noqa: PLC0415 - ci/ is not a package of the project

    monkeypatch.setattr(config, "STATE", tmp_path)
    monkeypatch.setattr(config, "VERSIONS_FILE", tmp_path / "versions.json")
    monkeypatch.setattr(config, "VARIANT_FILE", tmp_path / "variant.json")
    yield config, upgrade, tmp_path
    for name in [m for m in sys.modules if m == "lablib" or m.startswith("lablib.")]:
        del sys.modules[name]


def test_the_lab_builds_versions_env_and_each_older_wrapper_module(lablib: tuple) -> None:
    config, _, _ = lablib
    assert config.kube_versions() == ["v1.36.3", config.KUBE_VERSION]
    assert config.version_key("v1.36.3") < config.version_key("v1.37.2") < config.version_key("v1.37.10")


@pytest.mark.parametrize("version", ["v1.36.3"])
def test_an_older_wrapper_module_pins_kubernetes_and_every_staging_module_at_its_version(version: str) -> None:
    gomod = (BUILD / f"kube-{version}" / "go.mod").read_text()
    assert f"\tk8s.io/kubernetes {version}\n" in gomod
    replaces = re.findall(r"^replace (k8s\.io/[\w-]+) => (k8s\.io/[\w-]+) (\S+)$", gomod, re.M)
    assert len(replaces) > 30
    assert all(old == new and pinned == "v0." + version.removeprefix("v1.") for old, new, pinned in replaces)
    # the program is the default build's main.go, copied in at build time (never a second copy in the tree)
    assert not (BUILD / f"kube-{version}" / "main.go").exists()
    assert '"$here/kube/main.go"' in (BUILD / "build-kube.sh").read_text()


def running(state: Path, control_plane: str, *nodes: str) -> None:
    (state / "up.json").write_text("{}")
    doc = {"control-plane": control_plane, **{f"lab-node-{i}": v for i, v in enumerate(nodes, 1)}}
    (state / "versions.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("control_plane", "nodes", "target", "says"),
    [
        ("v1.37.2", ("v1.37.2",) * 3, "v1.37.2", "the lab already runs Kubernetes v1.37.2: nothing to upgrade"),
        ("v1.37.2", ("v1.37.2",) * 3, "v1.36.3", "the lab runs Kubernetes v1.37.2 and does not downgrade to v1.36.3"),
        ("v1.36.3", ("v1.36.3",) * 3, "v1.35.4", "the lab runs Kubernetes v1.36.3 and does not downgrade to v1.35.4"),
        ("v1.36.3", ("v1.36.3",) * 3, "v1.37.9", "the lab cannot build Kubernetes v1.37.9: it builds v1.36.3, v1.37.2"),
        ("v1.36.3", ("v1.36.3",) * 3, "latest", "'latest' is not a Kubernetes version (like v1.37.2)"),
        ("v1.35.4", ("v1.35.4",) * 3, "v1.37.2", "Kubernetes upgrades one minor version at a time: v1.35.4 goes"),
    ],
    ids=["same", "downgrade", "unknown-older", "unknown-newer", "not-a-version", "two-minors"],
)
def test_upgrade_refuses_in_one_sentence(
    lablib: tuple, control_plane: str, nodes: tuple[str, ...], target: str, says: str
) -> None:
    _, upgrade, state = lablib
    running(state, control_plane, *nodes)
    with pytest.raises(upgrade.LabError, match=re.escape(says)):
        upgrade.check_target(target)


def test_an_interrupted_upgrade_resumes(lablib: tuple) -> None:
    _, upgrade, state = lablib
    running(state, "v1.37.2", "v1.37.2", "v1.36.3", "v1.36.3")  # stopped after lab-node-1
    assert upgrade.check_target("v1.37.2")["lab-node-2"] == "v1.36.3"


def test_upgrade_needs_a_running_lab(lablib: tuple) -> None:
    _, upgrade, _ = lablib
    with pytest.raises(upgrade.LabError, match=re.escape("the lab is not up; run `ci/lab up --version <older>` first")):
        upgrade.check_target("v1.37.2")


def test_up_refuses_a_version_without_a_wrapper_module_before_touching_anything() -> None:
    done = subprocess.run(
        [str(REPO / "ci/lab"), "up", "--version", "v1.34.0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "ci/lab up: --version takes v1.36.3 or v1.37.2 (the versions the lab has a wrapper module for in "
        "ci/lab-build/), not 'v1.34.0'"
    ]
