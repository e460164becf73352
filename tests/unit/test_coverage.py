"""netconform.dialing.coverage: the bound for a backend rarer than 1/N, and the Service check's verdict."""

from __future__ import annotations

import math
import random

import pytest

from netconform.dialing.coverage import backend_tries, backend_verdict, false_failure_bound
from netconform.dialing.model import Attempt, DialResult

EXPECTED = {f"bulk-{i}": "lab-node-1" for i in range(19)} | {"rare": "lab-node-3"}


def result(attempts: list[Attempt], bound: int = 484) -> DialResult:
    return DialResult(
        source_pod="client",
        source_ip="10.244.0.5",
        source_node="lab-node-1",
        target_id="svc:tcp:ipv4",
        check="service",
        proto="tcp",
        host="10.96.0.7",
        port=8080,
        dest_node=None,
        attempts=attempts,
        dest_label="ClusterIP rare-set",
        timeout_ms=2000,
        bound=bound,
    )


def answered(*names: str) -> list[Attempt]:
    return [Attempt(ok=True, server_hostname=name) for name in names]


@pytest.mark.parametrize(("backends", "share"), [(3, 1 / 30), (20, 1 / 200), (100, 1e-4)])
def test_a_rarer_backend_gets_the_tries_its_share_needs(backends: int, share: float) -> None:
    checks = 2 * backends
    tries = backend_tries(backends, checks, min_share=share)
    bound = false_failure_bound(backends, tries, checks, min_share=share)
    assert bound <= 1e-9 < false_failure_bound(backends, tries - 1, checks, min_share=share)
    # tries grow as 1/share: the uniform bound would leave the rare backend unseen far more often than 1e-9
    uniform = backend_tries(backends, checks)
    assert tries / uniform == pytest.approx(math.log1p(-1 / backends) / math.log1p(-share), rel=0.02)
    assert false_failure_bound(backends, uniform, checks, min_share=share) > 1e-3


def test_the_default_share_is_uniform_and_a_share_above_it_is_refused() -> None:
    assert backend_tries(20, 3, min_share=1 / 20) == backend_tries(20, 3) == 484
    with pytest.raises(ValueError, match=r"min_share must be in \(0, 1/20\]"):
        backend_tries(20, 3, min_share=0.5)
    with pytest.raises(ValueError):
        false_failure_bound(20, 100, min_share=0.0)


def test_the_bound_holds_for_a_simulated_rare_backend() -> None:
    """The arithmetic against a simulation of a backend chosen 1 time in 200 among 20: with a fifth of the
    tries its share needs, it is missed as often as (1 - p)^k says (seeded: no chance involved)."""
    rng = random.Random(9)
    backends, share = 20, 1 / 200
    weights = [share] + [(1 - share) / (backends - 1)] * (backends - 1)
    tries = backend_tries(backends, 1, target=0.05, min_share=share) // 5
    misses = sum(0 not in set(rng.choices(range(backends), weights, k=tries)) for _ in range(2000))
    assert misses / 2000 == pytest.approx((1 - share) ** tries, abs=0.03)
    # what the uniform assumption would have promised for those tries is wrong by orders of magnitude
    assert misses / 2000 > 1000 * false_failure_bound(backends, tries)


def test_verdict_none_when_every_backend_answered() -> None:
    assert backend_verdict(result(answered(*EXPECTED)), EXPECTED) is None


def test_verdict_names_a_backend_never_chosen_and_the_tries_it_rests_on() -> None:
    bulk = [name for name in EXPECTED if name != "rare"]
    verdict = backend_verdict(result(answered(*(bulk * 26))[:484]), EXPECTED)
    assert verdict == (
        "client (10.244.0.5, lab-node-1) -> 10.96.0.7:8080 (ClusterIP rare-set): 484 connections reached 19/20 "
        "backends; never answered: rare (lab-node-3) (dialed until every backend answered or 484 connections; if "
        "the Service picks backends uniformly, as kube-proxy does, a reachable backend stays unseen that long with "
        f"probability < {false_failure_bound(20, 484):.0e})"
    )


def test_verdict_on_failed_connections_names_the_backends_not_seen_before_the_probe_stopped() -> None:
    bulk = [name for name in EXPECTED if name != "rare"]
    attempts = answered(*bulk) + [Attempt(ok=False, error="timeout")] * 5
    verdict = backend_verdict(result(attempts), EXPECTED)
    assert verdict == (
        "client (10.244.0.5, lab-node-1) -> 10.96.0.7:8080 (ClusterIP rare-set): 5/24 attempts failed: timeout "
        "after 2s (x5); 19/20 backends answered; never answered before the probe stopped: rare (lab-node-3)"
    )


def test_verdict_names_a_backend_that_is_not_one_of_the_expected() -> None:
    verdict = backend_verdict(result(answered(*EXPECTED, "stranger")), EXPECTED)
    assert verdict is not None and "answered by unknown backends: stranger" in verdict
