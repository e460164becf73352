"""The one duration parser of every option: plain seconds, units, and Go-style compounds (`1m30s`)."""

from __future__ import annotations

from argparse import ArgumentTypeError

import pytest

from netconform.plugin.options import duration_s, whole_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # the spellings accepted before
        ("90", 90),
        ("1.5", 1.5),
        ("90s", 90),
        ("500ms", 0.5),
        ("30m", 1800),
        ("1h", 3600),
        ("1.5h", 5400),
        ("2d", 172800),
        (" 2s ", 2),
        ("2 s", 2),
        # Go's time.ParseDuration (kubectl, Kubernetes objects)
        ("1m30s", 90),
        ("1h2m3.5s", 3723.5),
        ("2h45m", 9900),
        ("1s500ms", 1.5),
        ("300us", 0.0003),
        ("300µs", 0.0003),
        ("1500ns", 1.5e-6),
        (".5s", 0.5),
        ("1d12h", 129600),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "", "s", "1x", "-1s", "1m30", "m30s", "1..5s", "1,5s", "1e3s", "1 m 3"])
def test_not_a_duration_is_one_sentence(text: str) -> None:
    with pytest.raises(ArgumentTypeError, match=r"is not a duration like 2s, 500ms, 5m, 1h or 1m30s$"):
        duration_s(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("8", 8), ("8s", 8), ("1m", 60), ("1m30s", 90), ("1.2s", 2), ("500ms", 1)]
)
def test_whole_seconds_round_up(text: str, seconds: int) -> None:
    assert whole_seconds(text) == seconds


def test_whole_seconds_refuse_zero() -> None:
    with pytest.raises(ArgumentTypeError, match="must be more than 0s"):
        whole_seconds("0s")
