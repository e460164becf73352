"""Node names as a picture shows them: by the part that tells them apart.

Cloud node names share long prefixes and suffixes (`gke-prod-pool-1-abcd1234-xyz1`,
`ip-10-0-1-23.ec2.internal`); cut to a cell's width from the left they all read the same. Here the
part every name shares is dropped at a separator, and a label still too long keeps its end (where
cloud providers put the random, distinguishing part), with `…` where text was left out.
"""

from __future__ import annotations

import os

__all__ = ["common_affixes", "fit", "short_names"]

SEPARATORS = "-._"


def _cut_at_separator(common: str) -> str:
    """The longest part of a shared prefix that ends with a separator (never half a token)."""
    cut = max(common.rfind(s) for s in SEPARATORS)
    return common[: cut + 1] if cut >= 0 else ""


def common_affixes(names: list[str]) -> tuple[str, str]:
    """(prefix, suffix) every name shares, each ending (prefix) or starting (suffix) at a separator."""
    if len(names) < 2:
        return "", ""
    prefix = _cut_at_separator(os.path.commonprefix(names))
    rest = [n[len(prefix) :] for n in names]
    suffix = _cut_at_separator(os.path.commonprefix([r[::-1] for r in rest]))[::-1]
    if any(len(r) <= len(suffix) for r in rest):  # a name would vanish: keep its suffix
        suffix = ""
    return prefix, suffix


def fit(text: str, room: int) -> str:
    """`text` in at most `room` characters: its end kept, `…` first when something was left out."""
    return text if len(text) <= room else "…" + text[len(text) - room + 1 :]


def short_names(names: list[str], room: int) -> dict[str, str]:
    """name -> label of at most `room` characters (unique whenever the distinguishing parts fit)."""
    prefix, suffix = common_affixes(names)
    labels = {n: fit(n[len(prefix) : len(n) - len(suffix)], room) for n in names}
    if len(set(labels.values())) < len(labels):  # the ends collide: keep a head and an end instead
        labels = {n: _middle(n[len(prefix) : len(n) - len(suffix)], room) for n in names}
    return labels


def _middle(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    head = max(1, (room - 1) // 3)
    return text[:head] + "…" + text[len(text) - (room - 1 - head) :]
