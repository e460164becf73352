"""The `netconform_path` user property: which path a test checked, for diagnosis and reports.

This module is its only writer (`record_path`) and its only reader (`read_paths`); everything else
handles `PathInfo` objects. The value is a plain dict, so it survives xdist and JUnit XML.

Per-attempt outcomes are kept compactly, in the order the probe made the attempts: one code per
attempt (`ok`, or an error kind: T timeout, R refused, X reset, U unreachable, D dns, B too_big, E other),
a run of n equal codes written `code*n`: `ok T*4` is "the first connection passed, the next 4 timed out".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = [
    "PATH_PROPERTY",
    "PathInfo",
    "SameHost",
    "decode_outcomes",
    "encode_outcomes",
    "outcome_code",
    "read_paths",
    "record_path",
]

PATH_PROPERTY = "netconform_path"

_CODES = {"timeout": "T", "refused": "R", "reset": "X", "unreachable": "U", "dns": "D", "too_big": "B"}
MAX_SAME_HOST = 8  # other dials of the source to the same address kept on a failed path


def outcome_code(ok: bool, error: str = "") -> str:
    """One attempt's code: `ok`, or its error kind's letter (E for any other)."""
    return "ok" if ok else _CODES.get(error, "E")


def encode_outcomes(codes: Iterable[str]) -> str:
    """`["ok", "T", "T", "T", "T"]` -> `"ok T*4"` (runs of equal codes collapsed)."""
    runs: list[list[Any]] = []
    for code in codes:
        if runs and runs[-1][0] == code:
            runs[-1][1] += 1
        else:
            runs.append([code, 1])
    return " ".join(code if n == 1 else f"{code}*{n}" for code, n in runs)


def decode_outcomes(text: str) -> list[str]:
    """The inverse of encode_outcomes; an unreadable token is skipped."""
    out: list[str] = []
    for token in text.split():
        code, _, n = token.partition("*")
        out.extend([code] * (int(n) if n.isdigit() else 1 if not n else 0))
    return out


@dataclass(frozen=True)
class SameHost:
    """Another dial the same source made to the same address in the run (a failed path's `same_host`)."""

    port: int
    proto: str
    outcomes: tuple[str, ...]

    def encode(self) -> str:
        where = str(self.port) if self.proto in ("tcp", "") else f"{self.port}/{self.proto}"
        return f"{where}: {encode_outcomes(self.outcomes)}"

    @classmethod
    def decode_all(cls, text: str) -> list[SameHost]:
        """`"30387: T; 8081/udp: ok*3"` -> two entries; unreadable entries are skipped."""
        out = []
        for part in text.split(";"):
            where, sep, seq = part.partition(":")
            port, _, proto = where.strip().partition("/")
            if sep and port.isdigit():
                out.append(cls(int(port), proto or "tcp", tuple(decode_outcomes(seq))))
        return out


@dataclass(frozen=True)
class PathInfo:
    """One checked path. `error` is the first failure's kind (timeout, refused, ..., probe_not_run) or None.

    `attempts`: this path's outcomes in order (`ok T*4`); `same_host`, on a failed path only: the source's
    other dials to the same address in the run, `port[/proto]: outcomes` joined by `; ` (at most
    MAX_SAME_HOST), so a per-source pattern ("its first connection there passed, the later ones timed
    out") can be read from the failed test alone."""

    check: str
    src_node: str
    dst_node: str | None = None
    target: str | None = None
    error: str | None = None
    seen_ip: str | list[str] | None = None
    src_pod: str = ""
    src_ip: str = ""
    proto: str = ""
    attempts: str = ""
    same_host: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("attempts", "same_host"):  # absent rather than empty: the record stays small
            if not data[key]:
                del data[key]
        return data

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
