"""The lab's own state lock: `up`, `down`, `upgrade`, `fault` and `restart` change the lab, one at a time.

Not /tmp/netconform-lab.lock: that is the people's and helpers' lock, which they take around ci/lab with
flock(1); a ci/lab under such a hold taking it again would wait for its own parent. This one lives in /run
(gone at reboot) and names its holder, so a second `ci/lab down` (a killed CI's EXIT trap beside a person's)
says what it waits for, waits a bounded time and then runs on the lab the first one left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .proc import LabError

LOCK = Path(os.environ.get("LAB_STATE_LOCK", "/run/netconform-lab-state.lock"))
WAIT_S = 600.0
POLL_S = 0.2


def _holder() -> str:
    """What the file says holds it: "ci/lab down (pid 123)", or a vaguer phrase while it is being written."""
    with contextlib.suppress(OSError, ValueError):
        pid, command = Path(LOCK).read_text().split(maxsplit=1)
        return f"ci/lab {command.strip()} (pid {int(pid)})"
    return "ci/lab command"


@contextlib.contextmanager
def held(command: str, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the state lock while `command` ("down", "fault clear") runs; wait at most wait_s for it."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    # opened without truncating (the holder's line stays readable) and not inherited by what the lab starts
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "r+") as handle:
        started = time.monotonic()
        waited_for = ""
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited_for:
                    waited_for = _holder()
                    print(f"ci/lab {command}: another {waited_for} is running; waiting up to {wait_s:.0f} s",
                          file=sys.stderr, flush=True)  # fmt: skip
                if time.monotonic() - started > wait_s:
                    raise LabError(
                        f"another {_holder()} still holds {LOCK} after {wait_s:.0f} s; try again when it has finished"
                    ) from None
                time.sleep(POLL_S)
        if waited_for:
            print(f"ci/lab {command}: waited {time.monotonic() - started:.0f} s for {waited_for}",
                  file=sys.stderr, flush=True)  # fmt: skip
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {command}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
