"""The paths a test checked, on its item: recorded by the dial fixtures, read by diagnosis and the report.

In the process that ran the test each record stays as it was built (a PathInfo with its DialResult):
nothing parses it again or searches for its result. The `netconform_path` user property
(netconform.dialing.path) is its serialized form, for the other processes (xdist's controller: the
matrix, --outcomes-json, the DNS retry summary); a property value written by anything else (a test's
own dict) is read back from that form.
"""

from __future__ import annotations

import pytest

from netconform.dialing.path import PATH_PROPERTY, PathInfo, read_path, record_path

__all__ = ["record", "recorded"]

# id of a serialized value -> (that value, its record); the value is held so that its id stays its own
_RECORDS = pytest.StashKey[dict[int, tuple[object, PathInfo]]]()


def record(item: pytest.Item, info: PathInfo) -> None:
    """`info` as a path the test checked: its property, and the record itself for this process."""
    value = record_path(item.user_properties, info)
    item.stash.setdefault(_RECORDS, {})[id(value)] = (value, info)


def recorded(item: pytest.Item) -> list[PathInfo]:
    """Every path the test recorded, in the order recorded: as recorded here, else read from its property."""
    mine = item.stash.get(_RECORDS, {})
    out = []
    for key, value in item.user_properties:
        if key != PATH_PROPERTY:
            continue
        kept = mine.get(id(value))
        info = kept[1] if kept is not None and kept[0] is value else read_path(value)
        if info is not None:
            out.append(info)
    return out
