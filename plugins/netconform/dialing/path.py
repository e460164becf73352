"""A checked path (`PathInfo`) and its serialized form, the `netconform_path` user property.

`PathInfo` is the one record of a dial path: built once from its `DialResult` (which it keeps, in the
process that dialed), read by diagnosis, the capture and the report. The property is its only
serialized form, a JSON object as a string: it survives xdist, and JUnit XML (which writes
`str(value)`) carries JSON a CI system can parse. `record_path` appends `PathInfo.to_dict` as JSON,
`read_path` reads it back, also a dict as a test writes one (`read_paths`: every one a test recorded).

Per-attempt outcomes are kept compactly, in the order the probe made the attempts: one code per
attempt (`ok`, or an error kind: T timeout, R refused, X reset, U unreachable, D dns, B too_big, E other),
a run of n equal codes written `code*n`: `ok T*4` is "the first connection passed, the next 4 timed out".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # dialing.model builds PathInfo from a DialResult, so it imports this module
    from netconform.dialing.model import DialResult

__all__ = [
    "PATH_PROPERTY",
    "PODS_NOT_STARTED",
    "PathInfo",
    "SameHost",
    "decode_outcomes",
    "encode_outcomes",
    "outcome_code",
    "read_path",
    "read_paths",
    "record_path",
]

PATH_PROPERTY = "netconform_path"
# a path's error when an end's node never got its probe pods Ready (a broken CNI): the node is at fault
PODS_NOT_STARTED = "pods_not_started"

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
    out") can be read from the failed test alone. `result`: the dial it was made from, in the process
    that dialed (never serialized; None when read back from the property or when the probe did not run)."""

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
    result: DialResult | None = field(default=None, compare=False, repr=False)

    @property
    def target_port(self) -> int | None:
        _, _, port = (self.target or "").rpartition(":")
        return int(port) if port.isdigit() else None

    @property
    def target_ip(self) -> str:
        """The host part of `target` (an address, or a name for a DNS path)."""
        target = self.target or ""
        host, _, _ = target.rpartition(":")
        return host.strip("[]") if host else target

    def to_dict(self) -> dict[str, Any]:
        """The serialized form (the property's value): every field but `result`, lists copied."""
        data = {name: getattr(self, name) for name in _SERIALIZED}
        if isinstance(data["seen_ip"], list):
            data["seen_ip"] = list(data["seen_ip"])
        for key in ("attempts", "same_host"):  # absent rather than empty: the record stays small
            if not data[key]:
                del data[key]
        return data

    @classmethod
    def from_value(cls, value: str | Mapping[str, Any]) -> PathInfo:
        data = json.loads(value) if isinstance(value, str) else dict(value)
        return cls(**{k: v for k, v in data.items() if k in _SERIALIZED})


_SERIALIZED = tuple(f.name for f in fields(PathInfo) if f.name != "result")


def record_path(user_properties: list[tuple[str, object]], info: PathInfo) -> str:
    """Append `info`'s serialized form (JSON) to a test's user properties; the value appended."""
    value = json.dumps(info.to_dict())
    user_properties.append((PATH_PROPERTY, value))
    return value


def read_path(value: object) -> PathInfo | None:
    """One property value read back (a dict, or a JSON string after some serializers); None if unreadable."""
    if not isinstance(value, str | Mapping):
        return None
    try:
        return PathInfo.from_value(value)
    except (ValueError, TypeError, KeyError):
        return None


def read_paths(user_properties: Iterable[tuple[str, object]]) -> list[PathInfo]:
    """Every path recorded on a test, in the order recorded."""
    return [info for key, value in user_properties if key == PATH_PROPERTY and (info := read_path(value)) is not None]
