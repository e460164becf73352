"""The release probe image (ci/images, ci/image-build): its tag follows the package version, two builds
give the same digest, and the Go tool's own tests (index, layers, push/pull/mirror against a registry on
127.0.0.1) pass."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE_REF = re.compile(r"ghcr\.io/netconform/probe:([0-9A-Za-z_.+-]+)")
needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="the image build needs the go command")


def package_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def probe_refs(paths: list[Path]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in paths:
        tags = set(PROBE_REF.findall(path.read_text(errors="replace")))
        if tags:
            found[str(path.relative_to(REPO))] = tags
    return found


def test_the_default_probe_image_tag_is_the_package_version():
    version = package_version()
    code = probe_refs(sorted((REPO / "plugins").rglob("*.py")))
    assert code, "no default probe image reference (ghcr.io/netconform/probe:TAG) found under plugins/"
    lab_and_docs = probe_refs([REPO / "ci/lablib/config.py", REPO / "README.md", REPO / "probe/README.md"])
    wrong = {f: tags for f, tags in {**code, **lab_and_docs}.items() if tags != {version}}
    assert not wrong, f"probe image tags that are not the package version {version}: {wrong}"


def test_ci_images_ref_is_what_the_package_pulls():
    out = subprocess.run([sys.executable, str(REPO / "ci/images"), "ref"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ghcr.io/netconform/probe:{package_version()}"


@needs_go
def test_two_builds_give_the_same_digest(tmp_path):
    """Two builds into different directories: the same index digest and byte-identical OCI archives.
    Warm (Go build cache, pinned busybox fetched) this takes a few seconds; cold about 3 minutes."""
    refs = []
    for out in (tmp_path / "a", tmp_path / "b"):
        done = subprocess.run(
            [sys.executable, str(REPO / "ci/images"), "build", "probe", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert done.returncode == 0, done.stderr
        refs.append(done.stdout.strip().splitlines()[-1])
    assert re.fullmatch(rf"ghcr\.io/netconform/probe:{re.escape(package_version())}@sha256:[0-9a-f]{{64}}", refs[0])
    assert refs[0] == refs[1]
    assert (tmp_path / "a/probe.oci.tar").read_bytes() == (tmp_path / "b/probe.oci.tar").read_bytes()
    assert (tmp_path / "a/probe.ref").read_text().strip() == refs[0]


@needs_go
def test_image_build_go_tests():
    env = {**os.environ}
    debs = Path(os.environ.get("NETCONFORM_IMAGES_CACHE") or Path.home() / ".cache/netconform-images") / "debs"
    if debs.is_dir():
        env["NETCONFORM_DEB_DIR"] = str(debs)  # also check the pinned packages in the cache
    done = subprocess.run(
        ["go", "test", "-count=1", "./..."],
        cwd=REPO / "ci/image-build",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


@needs_go
def test_push_and_mirror_round_trip_through_ci_images(tmp_path):
    """`ci/images build`, `push` and `mirror` for real against go-containerregistry's registry on loopback:
    the pushed and the mirrored index have the digest the build printed."""
    registry_bin = tmp_path / "registry"
    done = subprocess.run(
        ["go", "build", "-o", str(registry_bin), "github.com/google/go-containerregistry/cmd/registry"],
        cwd=REPO / "ci/image-build",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    server = subprocess.Popen([str(registry_bin), "-port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()  # "... serving on port N", printed before it serves
        port = re.search(r"serving on port (\d+)", line)
        assert port, f"the registry said {line!r}"
        host = f"localhost:{port.group(1)}"
        images = [sys.executable, str(REPO / "ci/images")]
        out = tmp_path / "out"
        built = subprocess.run(
            [*images, "build", "probe", "--out", str(out)], capture_output=True, text=True, timeout=1200
        )
        assert built.returncode == 0, built.stderr
        digest = built.stdout.strip().splitlines()[-1].split("@")[1]
        version = package_version()
        pushed = subprocess.run(
            [*images, "push", f"{host}/ops", "--out", str(out)], capture_output=True, text=True, timeout=120
        )
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.strip().splitlines()[-1] == f"{host}/ops/probe:{version}@{digest}"
        mirrored = subprocess.run(
            [*images, "mirror", f"{host}/ops/probe:{version}", f"{host}/private/netconform/probe:{version}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert mirrored.returncode == 0, mirrored.stderr
        assert mirrored.stdout.strip().splitlines()[-1] == f"{host}/private/netconform/probe:{version}@{digest}"
        missing = subprocess.run(
            [*images, "mirror", f"{host}/nothing:here", f"{host}/x:y"], capture_output=True, text=True, timeout=120
        )
        assert missing.returncode == 1
        assert missing.stderr.strip().startswith("image-build: cannot read")
        assert len(missing.stderr.strip().splitlines()) == 1
    finally:
        server.terminate()
        server.wait(timeout=10)
