"""Option value types shared by the plugins: one sentence when a value is wrong (argparse prints
`argument --X: <sentence>`, pytest exits 4)."""

from __future__ import annotations

import math
import re
from argparse import ArgumentTypeError

__all__ = ["duration_s", "positive_int", "whole_seconds"]

# Go's units (time.ParseDuration, what kubectl and Kubernetes print), plus d for days
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h|d)"
_DURATION = re.compile(rf"(?:{_PART})+")
_EXAMPLES = "2s, 500ms, 5m, 1h or 1m30s"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def duration_s(text: str) -> float:
    """A duration in seconds: a plain number is seconds ('2', '1.5'), else Go-style units, one or more
    ('500ms', '90s', '5m', '1h', '2d', '1m30s', '1h2m3.5s'); surrounding spaces are ignored.
    The one parser of every duration option (an ArgumentTypeError names the value when it is none)."""
    value = str(text).strip()
    try:
        return float(value) if re.fullmatch(r"\d+(?:\.\d+)?", value) else _with_units(value)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a duration like {_EXAMPLES}") from None


def _with_units(value: str) -> float:
    compact = value.replace(" ", "")  # '2 s' was accepted before
    if not _DURATION.fullmatch(compact):
        raise ValueError(value)
    return sum(float(number) * _UNITS[unit] for number, unit in re.findall(_PART, compact))


def whole_seconds(text: str) -> int:
    """A duration as whole seconds, at least 1, rounded up (`tcpdump` under `timeout N`): '8', '8s', '1m'."""
    seconds = duration_s(text)
    if seconds <= 0:
        raise ArgumentTypeError(f"{text!r} must be more than 0s")
    return max(1, math.ceil(seconds))
