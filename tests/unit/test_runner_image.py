"""The runner image (`ci/images build runner`, docs/images.md): reproducible, complete on both platforms.

- Two builds from the same wheel give the same digest and a byte-identical archive.
- Each platform's image holds only ELF files of its own architecture, and every library they load
  (DT_NEEDED, through the loader's directories and $ORIGIN run paths) is in the image: arm64 cannot be
  executed here (no qemu), so this is what makes its image more than a guess. The lib-dynload modules
  left out on purpose (readline, curses, dbm, nis; ci/image-build/runner.json) are the only exception.
- The amd64 image runs: chrooted as nobody, `netconform version` and `netconform checks` work, and
  every module the suite and its plugins import loads (when this machine is amd64 and we are root).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = [sys.executable, str(REPO / "ci/images")]
TRIPLET = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
MACHINE = {62: "amd64", 183: "arm64"}
LEFT_OUT = ("readline.", "_curses", "_dbm.", "_gdbm.", "nis.")  # runner.json: not shipped on purpose


def elf(data: bytes) -> tuple[str, str | None, list[str], list[str]] | None:
    """(architecture, interpreter, DT_NEEDED, run paths) of a 64-bit little-endian ELF file, else None."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    machine = struct.unpack_from("<H", data, 18)[0]
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    interp, dynamic, loads = None, None, []
    for i in range(phnum):
        p_type, _, offset, vaddr, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            interp = data[offset : offset + filesz].rstrip(b"\0").decode()
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (offset, filesz)
        elif p_type == 1:  # PT_LOAD
            loads.append((vaddr, offset, filesz))
    entries = []
    if dynamic:
        for j in range(0, dynamic[1], 16):
            tag, val = struct.unpack_from("<qQ", data, dynamic[0] + j)
            if tag == 0:
                break
            entries.append((tag, val))
    strtab = next(
        (val - va + off for tag, val in entries if tag == 5 for va, off, size in loads if va <= val < va + size), 0
    )

    def string(i: int) -> str:
        return data[strtab + i : data.index(b"\0", strtab + i)].decode()

    needed = [string(v) for t, v in entries if t == 1]
    runpath = [p for t, v in entries if t in (15, 29) for p in string(v).split(":")]
    return MACHINE.get(machine, str(machine)), interp, needed, runpath


def resolve(root: Path, path: str) -> Path | None:
    """`path` inside `root`, following symlinks as the loader would in the container; None if missing."""
    current = Path("/")
    for part in Path(path).parts[1:]:
        current = current / part
        for _ in range(40):
            full = root / str(current).lstrip("/")
            if not full.is_symlink():
                break
            target = os.readlink(full)
            current = Path(os.path.normpath(target if target.startswith("/") else current.parent / target))
    full = root / str(current).lstrip("/")
    return full if full.exists() else None


def manifests(layout: Path) -> dict[str, dict[str, Any]]:
    top = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs/sha256"
    index = json.loads((blobs / top["manifests"][0]["digest"][7:]).read_text())
    return {
        m["platform"]["architecture"]: json.loads((blobs / m["digest"][7:]).read_text()) for m in index["manifests"]
    }


def unpack(layout: Path, manifest: dict[str, Any], dest: Path) -> dict[str, Any]:
    for layer in manifest["layers"]:
        with tarfile.open(layout / "blobs/sha256" / layer["digest"][7:]) as tar:
            tar.extractall(dest, filter="tar")
    return json.loads((layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    if not shutil.which("go"):
        pytest.skip("go is not installed (ci/images needs it)")
    wheel = subprocess.run([*IMAGES, "wheel"], capture_output=True, text=True, timeout=900)
    assert wheel.returncode == 0, wheel.stderr
    refs = []
    outs = []
    for n in range(2):
        out = tmp_path_factory.mktemp(f"runner{n}")
        done = subprocess.run(
            [*IMAGES, "build", "runner", "--out", str(out), "--wheel", wheel.stdout.strip()],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        refs.append(done.stdout.strip().splitlines()[-1])
        outs.append(out)
    assert (
        hashlib.sha256((outs[0] / "runner.oci.tar").read_bytes()).hexdigest()
        == hashlib.sha256((outs[1] / "runner.oci.tar").read_bytes()).hexdigest()
    )
    return outs[0], refs


def test_two_builds_give_the_same_digest(built: tuple[Path, list[str]]) -> None:
    out, refs = built
    version = subprocess.run([*IMAGES, "ref"], capture_output=True, text=True).stdout.strip().rsplit(":", 1)[1]
    assert refs[0] == refs[1]
    assert refs[0].startswith(f"ghcr.io/netconform/runner:{version}@sha256:")
    assert (out / "runner.ref").read_text().strip() == refs[0]


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_every_library_is_in_the_image_of_its_architecture(
    built: tuple[Path, list[str]], arch: str, tmp_path: Path
) -> None:
    out, _ = built
    config = unpack(out / "runner-oci", manifests(out / "runner-oci")[arch], tmp_path)
    assert config["architecture"] == arch
    assert config["config"]["User"] == "65534:65534"
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/netconform"]
    loader_dirs = [f"/lib/{TRIPLET[arch]}", f"/usr/lib/{TRIPLET[arch]}", "/lib", "/usr/lib"]
    missing, foreign, seen = [], [], 0
    for f in sorted(tmp_path.rglob("*")):
        if f.is_symlink() or not f.is_file():
            continue
        info = elf(f.read_bytes())
        if info is None:
            continue
        seen += 1
        machine, interp, needed, runpath = info
        inside = "/" + str(f.relative_to(tmp_path))
        if machine != arch:
            foreign.append(f"{inside} ({machine})")
            continue
        if f.name.startswith(LEFT_OUT):
            continue
        if interp and not resolve(tmp_path, interp):
            missing.append(f"{inside}: loader {interp}")
        dirs = [d.replace("$ORIGIN", str(Path(inside).parent)) for d in runpath] + loader_dirs
        missing += [
            f"{inside}: {lib}"
            for lib in needed
            if not any(resolve(tmp_path, os.path.normpath(f"{d}/{lib}")) for d in dirs)
        ]
    assert seen > 100, f"only {seen} ELF files in the {arch} image"
    assert not foreign, foreign
    assert not missing, missing
    for must in ("usr/bin/python3.11", "usr/local/bin/netconform", "bin/tar", "bin/sh"):
        assert resolve(tmp_path, "/" + must), must


@pytest.mark.skipif(platform.machine() != "x86_64" or os.geteuid() != 0, reason="needs root on amd64 (chroot)")
def test_the_amd64_image_runs_netconform_as_nobody(built: tuple[Path, list[str]], tmp_path: Path) -> None:
    out, _ = built
    unpack(out / "runner-oci", manifests(out / "runner-oci")["amd64"], tmp_path)
    tmp_path.chmod(0o755)  # the image's / (pytest makes its directories 0700: nobody could not enter)
    env = ["/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1"]

    def chrooted(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["chroot", "--userspec=65534:65534", str(tmp_path), *env, *cmd], capture_output=True, text=True, timeout=120
        )

    version = chrooted("netconform", "version")
    assert version.returncode == 0 and version.stdout.startswith("netconform "), version.stderr
    checks = chrooted("netconform", "checks")
    assert checks.returncode == 0 and "test_dns.py" in checks.stdout, checks.stderr[-2000:]
    modules = "netconform.plugin, netconform.cli, kubernetes, yaml, scapy.all, ssl, ctypes, xdist, allure_pytest, testinfra, frozenlist._frozenlist"
    imported = chrooted("python3", "-c", f"import {modules}; import yaml; assert yaml.__with_libyaml__; print('ok')")
    assert imported.stdout.strip().endswith("ok"), imported.stderr[-2000:]
    who = chrooted("id", "-u")
    assert who.stdout.strip() == "65534"
