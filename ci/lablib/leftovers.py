"""What a lab leaves on the machine when it is not up: what `down` must have removed, and says it did not.

`down` ends with this check and fails in one sentence naming what is left; `status` of a lab that is down
names it too; `up` cleans it first and refuses to start on top of what it could not clean.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import config, net, proc


def _unescape(field: str) -> str:
    """A /proc/self/mountinfo path field: space, tab, newline and backslash are octal escapes there."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts(mountinfo: str | None = None) -> list[str]:
    """Mount points in this mount namespace below the lab's state or cache directory, or its netns files."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    roots = [str(config.STATE), str(config.CACHE)]
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if any(point == r or point.startswith(r + "/") for r in roots) or point.startswith(
            f"/run/netns/{config.PREFIX}-"
        ):
            found.append(point)
    return found


def found() -> list[str]:
    """Each kind of leftover, named with what is there ("netns nclab-sw, nclab-node-1"); empty when clean."""
    kinds = [
        ("netns", [n for n in net.netns_list() if n.startswith(f"{config.PREFIX}-")]),
        ("link", [config.ROOT_VETH] if Path(f"/sys/class/net/{config.ROOT_VETH}").exists() else []),
        ("mounts", mounts()),
        ("cgroups", [str(p) for p in proc.cgroup_dirs(config.CGROUP_ROOT)]),
    ]
    return [f"{kind} {', '.join(items)}" for kind, items in kinds if items]


def sentence(items: list[str]) -> str:
    return "left behind: " + "; ".join(items)
