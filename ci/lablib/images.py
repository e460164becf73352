"""Container images built on this machine (no registry is reachable): OCI archives for `ctr images import`.

The probe image is the release artifact itself: `ci/images build` (multi-arch OCI index, reproducible),
imported with every platform, so the lab runs the digest a release would push. The pause, CoreDNS and
node agent images are the lab's own look-alikes under the upstream names, built below.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from . import config
from .proc import LabError, run

RELEASE_BUILD_TIMEOUT_S = 1200  # a cold Go cache compiles go-containerregistry and the probe twice (~3 min here)

BUSYBOX = "/bin/busybox"
BUSYBOX_APPLETS = [
    "sh",
    "cat",
    "ls",
    "sleep",
    "echo",
    "mkdir",
    "rm",
    "ps",
    "grep",
    "sed",
    "head",
    "tail",
    "env",
    "timeout",
    "base64",
    "wc",
    "tr",
    "cut",
    "date",
    "hostname",
    "nslookup",
    "wget",
    "nc",
]
# The node agent's network tools, copied from this machine's Debian packages with their libraries.
AGENT_TOOLS = [
    "/usr/sbin/ip",
    "/usr/sbin/bridge",
    "/usr/bin/ss",
    "/usr/bin/nstat",
    "/usr/sbin/tc",
    "/usr/sbin/xtables-nft-multi",
    "/usr/sbin/xtables-legacy-multi",
    "/usr/sbin/conntrack",
    "/usr/bin/tcpdump",
    "/usr/sbin/sysctl",
    "/usr/sbin/ethtool",
    "/bin/netstat",
    "/usr/bin/nsenter",
    "/usr/sbin/nft",
]
IPTABLES_NAMES = ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save"]


def _add_busybox(root: Path) -> None:
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for applet in BUSYBOX_APPLETS:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    for d in ("tmp", "etc", "proc", "sys", "dev", "run", "var/run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")


def _copy_with_libs(root: Path, binary: str) -> None:
    """Copy a dynamically linked binary and everything ldd says it loads."""
    files = [binary]
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            files.append(path)
    for f in files:
        dest = root / f.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(f).resolve(), dest)


def _agent_rootfs(root: Path) -> None:
    _add_busybox(root)
    for tool in AGENT_TOOLS:
        _copy_with_libs(root, tool)
    xt = "usr/lib/x86_64-linux-gnu/xtables"
    shutil.copytree(Path("/") / xt, root / xt, dirs_exist_ok=True)
    for so in (Path("/") / xt).glob("*.so"):
        _copy_with_libs(root, str(so))
    for name in IPTABLES_NAMES:
        (root / "usr/sbin" / name).symlink_to("xtables-nft-multi")
        (root / "usr/sbin" / f"{name.replace('tables', 'tables-legacy')}").symlink_to("xtables-legacy-multi")
    (root / "etc/protocols").write_text(Path("/etc/protocols").read_text())
    (root / "etc/services").write_text(Path("/etc/services").read_text())
    (root / "usr/bin/sleep").symlink_to("/bin/busybox")


def _layer(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isfile():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return buf.getvalue()


def _oci_archive(out: Path, ref: str, root: Path, entrypoint: list[str], cmd: list[str]) -> None:
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    layer = _layer(root)
    layer_desc = blob(layer)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }
    config_desc = blob(json.dumps(image_config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_desc}],
    }
    manifest_desc = blob(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_desc,
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
                },
            }
        ],
    }
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest.split(":")[1], data)
    tmp.rename(out)


def release_probe(out_dir: Path) -> tuple[Path, str]:
    """`ci/images build --out out_dir`: the probe image exactly as a release builds it.

    Returns the OCI archive and the NAME:TAG@sha256:DIGEST the build printed. Run every time (a warm
    build takes seconds): its inputs (probe source, ci/image-build, pinned busybox, package version)
    are more than the lab's binary cache key covers."""
    cmd = [sys.executable, str(config.REPO / "ci/images"), "build", "--out", str(out_dir)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=RELEASE_BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LabError(f"`ci/images build` did not finish within {RELEASE_BUILD_TIMEOUT_S}s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"building the release probe image failed: {why}")
    ref = lines[-1]
    if ref.split("@", 1)[0] != config.IMAGES["probe"]:
        raise LabError(f"ci/images built {ref.split('@', 1)[0]}, but the lab's pods run {config.IMAGES['probe']}")
    return out_dir / "probe.oci.tar", ref


def import_into(containerd_sock: Path, archives: list[Path]) -> None:
    """Import archives into a node's containerd with every platform's content (the probe index carries
    amd64 and arm64; without --all-platforms ctr would keep only this machine's and let the rest be
    garbage-collected)."""
    for archive in archives:
        run(
            [
                "ctr",
                "--address",
                str(containerd_sock),
                "-n",
                "k8s.io",
                "images",
                "import",
                "--all-platforms",
                str(archive),
            ],
            timeout=120,
        )


def probe_digest(containerd_sock: Path) -> tuple[str, list[str]]:
    """The probe image's digest and platforms as one node's containerd lists them (`ctr images ls`)."""
    out = run(["ctr", "--address", str(containerd_sock), "-n", "k8s.io", "images", "ls"], timeout=30)
    for line in out.splitlines()[1:]:
        cols = line.split()
        if cols and cols[0] == config.IMAGES["probe"]:
            # REF TYPE DIGEST SIZE(2 columns) PLATFORMS LABELS
            return cols[2], cols[5].split(",")
    raise LabError(f"{config.IMAGES['probe']} is not in containerd at {containerd_sock}")


def build(bin_dir: Path) -> list[Path]:
    """Build every lab image from the built binaries; cached next to them (the probe: see release_probe)."""
    out_dir = bin_dir / "images"
    out_dir.mkdir(exist_ok=True)
    probe_archive, _ = release_probe(out_dir / "release")
    # `ci/images build` builds the runner too (the in-cluster Job's image, ci/incluster/job.yaml)
    runner_archive = probe_archive.with_name("runner.oci.tar")
    plans = {
        "pause": (["/probe"], ["pause"], {"probe": "probe"}),
        "coredns": (["/coredns"], [], {"coredns": "coredns"}),
        "agent": (["/bin/sh"], ["-c", "sleep infinity"], {}),
    }
    archives = [probe_archive, runner_archive]
    for name, (entrypoint, cmd, binaries) in plans.items():
        archive = out_dir / f"{name}.tar"
        archives.append(archive)
        if archive.exists():
            continue
        root = out_dir / f"{name}-rootfs"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        if name == "agent":
            _agent_rootfs(root)
        else:
            _add_busybox(root)
        for src, dest in binaries.items():
            shutil.copy2(bin_dir / src, root / dest)
        _oci_archive(archive, config.IMAGES[name], root, entrypoint, cmd)
        shutil.rmtree(root)
    return archives
