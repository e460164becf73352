"""The `netconform_path` user property: which path a test checked, for diagnosis and reports.

This module is its only writer (`record_path`) and its only reader (`read_paths`); everything else
handles `PathInfo` objects. The value is a plain dict, so it survives xdist and JUnit XML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["PATH_PROPERTY", "PathInfo", "read_paths", "record_path"]

PATH_PROPERTY = "netconform_path"


@dataclass(frozen=True)
class PathInfo:
    """One checked path. `error` is the first failure's kind (timeout, refused, ..., probe_not_run) or None."""

    check: str
    src_node: str
    dst_node: str | None = None
    target: str | None = None
    error: str | None = None
    seen_ip: str | list[str] | None = None
    src_pod: str = ""
    src_ip: str = ""
    proto: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_value(cls, value: str | Mapping[str, Any]) -> PathInfo:
        data = json.loads(value) if isinstance(value, str) else dict(value)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def record_path(user_properties: list[tuple[str, object]], info: PathInfo) -> None:
    user_properties.append((PATH_PROPERTY, info.to_dict()))


def read_paths(user_properties: Iterable[tuple[str, object]]) -> list[PathInfo]:
    """Every path recorded on a test (dicts, or JSON strings after some serializers)."""
    paths = []
    for key, value in user_properties:
        if key != PATH_PROPERTY or not isinstance(value, str | Mapping):
            continue
        try:
            paths.append(PathInfo.from_value(value))
        except (ValueError, TypeError, KeyError):
            continue
    return paths
