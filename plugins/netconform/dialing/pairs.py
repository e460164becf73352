"""Which ordered (source, destination) node pairs the cross-node checks cover.

Up to `ALL_PAIRS_UP_TO` nodes every ordered pair is checked: at 20 nodes that is 380 pairs, each
source dials 19 peers in its one exec, and the run costs about what a sample would. Above it the
pairs grow as N^2 (999,000 at 1000 nodes), so a sample is taken where every node is a source `k`
times and a destination `k` times, with different peers each run: the nodes are shuffled with a
seed (printed, so a run can be repeated) and each node is paired with the next 1..k nodes of the
shuffled ring. Nodes carrying topology labels (zone, or region) additionally get one pair for every
ordered pair of groups the sample missed, so every zone reaches every other zone.
`ring` is the same without the shuffle (fixed peers, by name).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ALL_PAIRS_UP_TO", "MODES", "PairChoice", "choose_pairs"]

ALL_PAIRS_UP_TO = 20
MODES = ("auto", "all", "ring", "sample")
TOPOLOGY_LABELS = ("topology.kubernetes.io/zone", "topology.kubernetes.io/region")


@dataclass(frozen=True)
class PairChoice:
    mode: str  # all | ring | sample (auto resolved)
    pairs: frozenset[tuple[str, str]]  # ordered (source, destination), distinct nodes
    seed: int
    per_node: int

    def covers(self, src: str, dst: str) -> bool:
        """Same-node paths are always checked; cross-node ones when chosen."""
        return src == dst or (src, dst) in self.pairs

    def describe(self, nodes: int) -> str:
        total = nodes * (nodes - 1)
        if self.mode == "all":
            return f"cross-node pairs: all {total:,}"
        how = f"seed {self.seed}, repeat with --pairs-seed {self.seed}" if self.mode == "sample" else "by name"
        return (
            f"cross-node pairs: {len(self.pairs):,} of {total:,} ({self.mode}, every node at least "
            f"{self.per_node}x as source and as destination; {how})"
        )


def choose_pairs(
    nodes: list[str], mode: str, per_node: int, seed: int, labels: Mapping[str, Mapping[str, str]] | None = None
) -> PairChoice:
    """The cross-node pairs to check. Deterministic for the same nodes, mode, per_node and seed."""
    names = sorted(nodes)
    if mode == "auto":
        mode = "all" if len(names) <= ALL_PAIRS_UP_TO else "sample"
    k = min(per_node, len(names) - 1)
    if mode == "all" or k >= len(names) - 1:
        pairs = {(a, b) for a in names for b in names if a != b}
        return PairChoice("all", frozenset(pairs), seed, len(names) - 1)
    order = list(names)
    if mode == "sample":
        random.Random(seed).shuffle(order)
    pairs = {(order[i], order[(i + step) % len(order)]) for i in range(len(order)) for step in range(1, k + 1)}
    pairs |= _group_pairs(order, pairs, labels or {})
    return PairChoice(mode, frozenset(pairs), seed, k)


def _group_pairs(
    order: list[str], chosen: set[tuple[str, str]], labels: Mapping[str, Mapping[str, str]]
) -> set[tuple[str, str]]:
    """One extra pair for every ordered pair of topology groups the chosen pairs do not connect."""
    extra: set[tuple[str, str]] = set()
    for key in TOPOLOGY_LABELS:
        group = {n: labels.get(n, {}).get(key) for n in order}
        groups = sorted({g for g in group.values() if g})
        if len(groups) < 2:
            continue
        linked = {(group[a], group[b]) for a, b in chosen | extra}
        for ga in groups:
            for gb in groups:
                if ga != gb and (ga, gb) not in linked:
                    a = next(n for n in order if group[n] == ga)
                    b = next(n for n in order if group[n] == gb)
                    extra.add((a, b))
    return extra
