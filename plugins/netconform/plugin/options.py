"""Option value types shared by the plugins: one sentence when a value is wrong (argparse prints
`argument --X: <sentence>`, pytest exits 4)."""

from __future__ import annotations

import re
from argparse import ArgumentTypeError

__all__ = ["duration_s", "positive_int"]

_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def duration_s(text: str) -> float:
    """'2', '2s', '500ms', '5m', '1h', '1d' -> seconds (a plain number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(text))
    if not match:
        raise ArgumentTypeError(f"{text!r} is not a duration like 2s, 500ms, 5m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]
