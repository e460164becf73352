"""ci/lab's state lock and leftovers check (ci/lablib, no lab needed): two commands that change the lab run
one after the other, the second saying what it waits for; what `down` must have removed is named (cgroups in
every hierarchy, the v2 one included; mounts below the lab's directories); nothing outside the lab's cgroup
tree is ever removed. On the lab itself, ci/test's `ci/lab down` between its stages and at its end fails the
run when anything is left."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]

# A ci/lab command's use of the lock, in a process of its own (the lock is per open file, as between two
# ci/lab processes): it holds the lock until `release` exists, after writing `ready`.
HOLDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from lablib import statelock
ready, release = Path(sys.argv[2]), Path(sys.argv[3])
try:
    with statelock.held("down", wait_s=float(sys.argv[4])):
        print("holding", flush=True)
        ready.touch()
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
except statelock.LabError as err:  # as ci/lab prints it
    sys.exit(f"ci/lab down: {err}")
print("released", flush=True)
"""


@pytest.fixture
def lablib(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(REPO / "ci"))
    import lablib  # noqa: PLC0415 - ci/ is not a package of the project

    yield lablib
    for name in [m for m in sys.modules if m == "lablib" or m.startswith("lablib.")]:
        del sys.modules[name]


def holder(tmp_path: Path, name: str, wait_s: float = 600) -> subprocess.Popen[str]:
    env = {"PATH": "/usr/bin:/bin", "LAB_STATE_LOCK": str(tmp_path / "state.lock")}
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(REPO / "ci"), str(tmp_path / f"{name}.ready"),
         str(tmp_path / "release"), str(wait_s)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def wait_file(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"waited 30 s for {path}"
        time.sleep(0.05)


def test_a_second_down_waits_for_the_first_and_says_for_whom(tmp_path: Path) -> None:
    first = holder(tmp_path, "first")
    wait_file(tmp_path / "first.ready")
    second = holder(tmp_path, "second")
    said = second.stderr.readline()  # printed while it waits: the first still holds the lock
    assert said == f"ci/lab down: another ci/lab down (pid {first.pid}) is running; waiting up to 600 s\n", said
    assert not (tmp_path / "second.ready").exists()
    (tmp_path / "release").touch()
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert (first.returncode, out1, err1) == (0, "holding\nreleased\n", "")
    assert second.returncode == 0 and out2 == "holding\nreleased\n", err2
    assert err2.startswith("ci/lab down: waited ") and err2.endswith(f" for ci/lab down (pid {first.pid})\n"), err2


def test_the_wait_is_bounded_and_ends_in_one_sentence(tmp_path: Path) -> None:
    first = holder(tmp_path, "first")
    wait_file(tmp_path / "first.ready")
    second = holder(tmp_path, "second", wait_s=0.5)
    _, err = second.communicate(timeout=60)
    (tmp_path / "release").touch()
    first.communicate(timeout=60)
    assert second.returncode == 1
    assert err.splitlines() == [
        f"ci/lab down: another ci/lab down (pid {first.pid}) is running; waiting up to 0 s",
        f"ci/lab down: another ci/lab down (pid {first.pid}) still holds {tmp_path / 'state.lock'} after 0 s; "
        "try again when it has finished",
    ], err


def cgroup_fs(root: Path) -> None:
    """A stand-in /sys/fs/cgroup of a hybrid mount: v1 hierarchies and the v2 one (`unified`), each a
    directory with a cgroup.procs; the lab's tree in some, someone else's cgroups beside it."""
    for name in ("pids", "memory", "systemd", "unified"):
        (root / name).mkdir(parents=True)
        (root / name / "cgroup.procs").write_text("")
        (root / name / "someone-else" / "netconform-lab").mkdir(parents=True)  # not ours: not at the root
    (root / "cpuset").mkdir()  # a plain directory, not a hierarchy
    for name in ("pids", "unified"):
        (root / name / "netconform-lab" / "lab-node-1" / "kubepods" / "besteffort" / "podx").mkdir(parents=True)
        (root / name / "netconform-lab" / "control-plane").mkdir()
    (root / "memory" / "netconform-lab").mkdir()


def test_down_removes_the_lab_cgroups_in_every_hierarchy_the_v2_one_included(
    lablib: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lablib import proc  # noqa: PLC0415

    cgroup_fs(tmp_path)
    monkeypatch.setattr(proc, "CGROUP_FS", tmp_path)
    assert [p.name for p in proc.controllers()] == ["memory", "pids", "systemd"]
    assert [p.name for p in proc.hierarchies()] == ["memory", "pids", "systemd", "unified"]
    assert proc.cgroup_dirs("netconform-lab") == [
        tmp_path / n / "netconform-lab" for n in ("memory", "pids", "unified")
    ]
    proc.remove_cgroup("netconform-lab")
    assert proc.cgroup_dirs("netconform-lab") == []
    for name in ("pids", "memory", "systemd", "unified"):  # nothing else touched
        assert (tmp_path / name / "someone-else" / "netconform-lab").is_dir()


@pytest.mark.parametrize("relpath", ["", "/", ".", "..", "netconform-lab/../someone-else", "/../x"])
def test_a_cgroup_path_outside_the_lab_tree_is_refused(
    lablib: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relpath: str
) -> None:
    from lablib import proc  # noqa: PLC0415

    cgroup_fs(tmp_path)
    monkeypatch.setattr(proc, "CGROUP_FS", tmp_path)
    for call in (proc.remove_cgroup, proc.cgroup_dirs, proc.cgroup_pids):
        with pytest.raises(proc.LabError, match="is not a path below a hierarchy's root"):
            call(relpath)
    assert (tmp_path / "pids" / "someone-else" / "netconform-lab").is_dir()


# Lines of a real /proc/self/mountinfo, with a node's bind mount and a netns file the lab left in it.
MOUNTINFO = r"""22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 22 0:26 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755
301 22 0:4 / /run/netns rw,nosuid shared:120 - tmpfs tmpfs rw
302 301 0:4 net:[4026532301] /run/netns/nclab-sw rw shared:121 - nsfs nsfs rw
303 301 0:4 net:[4026532401] /run/netns/other-app rw shared:122 - nsfs nsfs rw
310 22 254:0 /var/lib/netconform-lab/nodes/lab-node-1/kubelet /var/lib/netconform-lab/nodes/lab-node-1/kubelet\040dir rw - ext4 /dev/vda rw
311 22 254:0 /srv /var/lib/netconform-lab-other rw - ext4 /dev/vda rw
"""


def test_leftover_mounts_are_those_below_the_lab_dirs_and_its_netns_files(lablib: ModuleType) -> None:
    from lablib import leftovers  # noqa: PLC0415

    assert leftovers.mounts(MOUNTINFO) == [
        "/run/netns/nclab-sw",
        "/var/lib/netconform-lab/nodes/lab-node-1/kubelet dir",
    ]
