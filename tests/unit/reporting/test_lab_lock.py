"""The lab tests' lock: who holds it, read from /proc/locks (a recorded real snapshot: one holder, four waiters)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.lab.conftest import ancestors, lock_holders

# /proc/locks on this machine while `flock /tmp/netconform-lab.lock ... ci/test` held the lab lock
PROC_LOCKS = """\
1: FLOCK  ADVISORY  WRITE 8249 fe:00:1025223 0 EOF
3: OFDLCK ADVISORY  WRITE -1 fe:00:1024158 0 EOF
6: FLOCK  ADVISORY  WRITE 23325 fe:00:{inode} 0 EOF
6: -> FLOCK  ADVISORY  WRITE 20645 fe:00:{inode} 0 EOF
6:  -> FLOCK  ADVISORY  WRITE 27545 fe:00:{inode} 0 EOF
"""


def test_holder_is_the_line_without_an_arrow(tmp_path: Path) -> None:
    lock = tmp_path / "lab.lock"
    lock.touch()
    assert lock_holders(lock, PROC_LOCKS.format(inode=lock.stat().st_ino)) == {23325}
    assert lock_holders(lock, PROC_LOCKS.format(inode=1)) == set()


def test_ancestors_walks_up_to_init() -> None:
    mine = ancestors()
    assert os.getppid() in mine and os.getpid() not in mine
