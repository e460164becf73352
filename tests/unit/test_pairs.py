"""Which cross-node pairs a run checks: all up to 20 nodes, above it a seeded sample with a stated coverage."""

from __future__ import annotations

from collections import Counter

import pytest

from netconform.dialing.pairs import ALL_PAIRS_UP_TO, choose_pairs


def names(n: int) -> list[str]:
    return [f"node-{i:04d}" for i in range(n)]


def test_auto_checks_every_pair_up_to_the_limit() -> None:
    choice = choose_pairs(names(ALL_PAIRS_UP_TO), "auto", 4, seed=1)
    assert choice.mode == "all" and len(choice.pairs) == ALL_PAIRS_UP_TO * (ALL_PAIRS_UP_TO - 1)
    assert choice.describe(ALL_PAIRS_UP_TO) == "cross-node pairs: all 380"


@pytest.mark.parametrize("n, k", [(21, 4), (100, 4), (1000, 4), (1000, 1)])
def test_sample_makes_every_node_k_times_source_and_destination(n: int, k: int) -> None:
    choice = choose_pairs(names(n), "auto", k, seed=7)
    assert choice.mode == "sample" and len(choice.pairs) == n * k
    sources, destinations = Counter(a for a, _ in choice.pairs), Counter(b for _, b in choice.pairs)
    assert set(sources.values()) == {k} and set(destinations.values()) == {k}
    assert all(a != b for a, b in choice.pairs)
    assert f"{n * k:,} of {n * (n - 1):,}" in choice.describe(n) and "--pairs-seed 7" in choice.describe(n)


def test_sample_is_repeatable_by_seed_and_differs_between_seeds() -> None:
    nodes = names(50)
    assert choose_pairs(nodes, "sample", 3, seed=11) == choose_pairs(list(reversed(nodes)), "sample", 3, seed=11)
    assert choose_pairs(nodes, "sample", 3, seed=11).pairs != choose_pairs(nodes, "sample", 3, seed=12).pairs


def test_ring_pairs_each_node_with_the_next_ones_by_name() -> None:
    choice = choose_pairs(names(30), "ring", 2, seed=0)
    assert ("node-0000", "node-0001") in choice.pairs and ("node-0029", "node-0001") in choice.pairs
    assert choice.covers("node-0005", "node-0005") and not choice.covers("node-0005", "node-0004")


def test_every_zone_reaches_every_other_zone() -> None:
    nodes = names(60)
    # zone c is a single node: a 1-per-node ring over 60 nodes rarely links c with both a and b
    zones = {n: {"topology.kubernetes.io/zone": "a" if i < 30 else "b" if i < 59 else "c"} for i, n in enumerate(nodes)}
    choice = choose_pairs(nodes, "sample", 1, seed=3, labels=zones)
    linked = {
        (zones[a]["topology.kubernetes.io/zone"], zones[b]["topology.kubernetes.io/zone"]) for a, b in choice.pairs
    }
    assert linked >= {(x, y) for x in "abc" for y in "abc" if x != y}


def test_small_clusters_are_never_sampled_below_all_pairs() -> None:
    assert choose_pairs(names(3), "sample", 4, seed=1).mode == "all"
