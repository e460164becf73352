"""Option value types shared by the plugins: one sentence when a value is wrong (argparse prints
`argument --X: <sentence>`, pytest exits 4)."""

from __future__ import annotations

import math
import re
from argparse import ArgumentTypeError
from collections.abc import Callable

__all__ = ["duration_in", "duration_s", "int_in", "positive_int", "whole_seconds", "whole_seconds_in"]

# Go's units (time.ParseDuration, what kubectl and Kubernetes print), plus d for days
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h|d)"
_DURATION = re.compile(rf"(?:{_PART})+")
_EXAMPLES = "2s, 500ms, 5m, 1h or 1m30s"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"{shown(text)} is not a whole number") from None
    if value < 1:
        raise ArgumentTypeError(f"{shown(text)} must be 1 or more")
    return value


def duration_s(text: str) -> float:
    """A duration in seconds: a plain number is seconds ('2', '1.5'), else Go-style units, one or more
    ('500ms', '90s', '5m', '1h', '2d', '1m30s', '1h2m3.5s'); surrounding spaces are ignored.
    The one parser of every duration option (an ArgumentTypeError names the value when it is none)."""
    value = str(text).strip()
    try:
        return float(value) if re.fullmatch(r"\d+(?:\.\d+)?", value) else _with_units(value)
    except ValueError:
        raise ArgumentTypeError(f"{shown(str(text))} is not a duration like {_EXAMPLES}") from None


def _with_units(value: str) -> float:
    compact = value.replace(" ", "")  # '2 s' was accepted before
    if not _DURATION.fullmatch(compact):
        raise ValueError(value)
    return sum(float(number) * _UNITS[unit] for number, unit in re.findall(_PART, compact))


def whole_seconds(text: str) -> int:
    """A duration as whole seconds, at least 1, rounded up (`tcpdump` under `timeout N`): '8', '8s', '1m'."""
    seconds = duration_s(text)
    if seconds <= 0:
        raise ArgumentTypeError(f"{shown(str(text))} must be more than 0s")
    return max(1, math.ceil(seconds))


def int_in(low: int, high: int) -> Callable[[str], int]:
    """A whole number in low..high (the range the option's --help states)."""

    def parse(text: str) -> int:
        value = positive_int(text) if low >= 1 else _whole(text)
        if not low <= value <= high:
            raise ArgumentTypeError(f"{shown(text)} is outside {low}..{high}")
        return value

    parse.__name__ = "number"  # what argparse calls the type in its messages
    return parse


def duration_in(low_s: float, high_s: float) -> Callable[[str], float]:
    """A duration (as duration_s) in low_s..high_s: no overflow, no NaN, nothing a probe refuses later."""

    def parse(text: str) -> float:
        value = duration_s(text)
        if not (math.isfinite(value) and low_s <= value <= high_s):
            raise ArgumentTypeError(f"{shown(text)} is outside {words(low_s)}..{words(high_s)}")
        return value

    parse.__name__ = "duration"
    return parse


def shown(text: str) -> str:
    """A value the user gave, quoted and cut short for a one-line message."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def words(seconds: float) -> str:
    """A duration as an option takes it: 500ms, 90s, 5m, 1h."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds > 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ArgumentTypeError(f"{shown(text)} is not a whole number") from None


def whole_seconds_in(low: int, high: int) -> Callable[[str], int]:
    """A duration as whole seconds (as whole_seconds) in low..high seconds."""

    def parse(text: str) -> int:
        value = whole_seconds(text)
        if not low <= value <= high:
            raise ArgumentTypeError(f"{shown(text)} is outside {words(low)}..{words(high)}")
        return value

    parse.__name__ = "duration"
    return parse
