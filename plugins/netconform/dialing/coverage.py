"""How many connections a "reaches every backend" check may make before a missing backend is a verdict.

A Service balances each new connection to one of its N ready backends at random. The probe dials
until it has seen every backend answer, so a healthy Service usually costs about N * H(N)
connections (coupon collector: 6 at N=3, 37 at 12, 519 at 100). Only when a backend stays unseen
does the count matter: after k connections a given reachable backend chosen with probability p is
missed with probability (1 - p)^k, so some backend is missed with probability at most
N * (1 - p_min)^k (union bound; p_min is the smallest share). A run makes `checks` such verdicts
(one per source and protocol); to keep the chance that any of them is a false failure below
`FALSE_FAILURE_PER_RUN`, each may dial at most

    k = ceil( ln(checks * N / FALSE_FAILURE_PER_RUN) / -ln(1 - p_min) )

connections. With uniform choice (p_min = 1/N) that is 59 at N=3 (6 checks), 304 at 12, 3,048 at
100, about 35,200 at 1000. A backend not seen after k connections is reported as never answering,
and the message says how many tries the verdict rests on. A backend that does not answer at all
fails faster: the probe stops a target after a few failed connections (max_failures), which is a
network verdict of its own; the message then names the backends not seen before it stopped.

The shares, honestly. The bound is only as good as p_min. kube-proxy gives every ready endpoint
of a Service the same share (iptables `statistic --mode random --probability 1/(N-i)` chains,
nftables `numgen random mod N`), and the suite's own Service has one endpoint per node, no session
affinity and no traffic distribution: there p_min = 1/N exactly, and the rarest backend *is* the
worst case the bound is computed for (the lab test tests/lab/test_rare_backend.py forces it: one
backend among many). A data plane that weights backends (a service mesh, a Maglev table whose slots
are uneven, topology hints that send a node elsewhere) gives some backend p < 1/N; pass that
`min_share` to `backend_tries`, or the verdict on that backend rests on fewer tries than the stated
probability assumes (the message says "if the Service picks backends uniformly").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from netconform.dialing.model import DialResult

__all__ = ["FALSE_FAILURE_PER_RUN", "backend_tries", "backend_verdict", "false_failure_bound"]

FALSE_FAILURE_PER_RUN = 1e-9


def _share(backends: int, min_share: float | None) -> float:
    share = 1.0 / backends if min_share is None else min_share
    if not 0.0 < share <= 1.0 / backends:
        raise ValueError(f"min_share must be in (0, 1/{backends}], got {min_share}")
    return share


def backend_tries(
    backends: int, checks: int, target: float = FALSE_FAILURE_PER_RUN, min_share: float | None = None
) -> int:
    """Connections one check may make so that all `checks` of a run together fail falsely with P < target,
    when the rarest of `backends` is chosen with probability `min_share` (default 1/backends: uniform)."""
    if backends <= 1:
        return 3  # one backend: nothing is left to chance; a few tries tell a flake from a dead path
    per_miss = -math.log1p(-_share(backends, min_share))
    return math.ceil(math.log(max(checks, 1) * backends / target) / per_miss)


def false_failure_bound(backends: int, tries: int, checks: int = 1, min_share: float | None = None) -> float:
    """Upper bound on P(some reachable backend unseen in `tries` connections) over `checks` checks, the
    rarest backend chosen with probability `min_share` (default 1/backends)."""
    if backends <= 1:
        return 0.0
    return min(1.0, checks * backends * (1.0 - _share(backends, min_share)) ** tries)


def backend_verdict(result: DialResult, expected: Mapping[str, str]) -> str | None:
    """What is wrong with a "reaches every backend" dial, in one message, or None when every backend in
    `expected` (server hostname -> its node) answered and every connection did.

    `nc-client-x (...) -> 10.96.0.7:8080 (ClusterIP nc-server): 463 connections reached 19/20 backends;
    never answered: nc-server-rare (lab-node-3) (dialed until every backend answered or 463 connections; ...)`
    or, when connections failed: `...: 5/97 attempts failed: timeout after 1s (x5); 19/20 backends
    answered; never answered before the probe stopped: nc-server-rare (lab-node-3)`.
    """
    missing = sorted(set(expected) - set(result.backends))
    unexpected = sorted(set(result.backends) - set(expected))
    named = ", ".join(f"{name} ({expected[name]})" for name in missing)
    strangers = f"; answered by unknown backends: {', '.join(unexpected)}" if unexpected else ""
    if not result.ok:
        seen = f"{len(result.backends) - len(unexpected)}/{len(expected)} backends answered"
        never = f"; never answered before the probe stopped: {named}" if missing else ""
        return f"{result.describe()}; {seen}{never}{strangers}"
    if not missing and not unexpected:
        return None
    bound = false_failure_bound(len(expected), result.bound)
    return (
        f"{result.path()}: {len(result.attempts)} connections reached {len(result.backends)}/{len(expected)} backends"
        + (f"; never answered: {named}" if missing else "")
        + strangers
        + f" (dialed until every backend answered or {result.bound} connections; if the Service picks backends"
        f" uniformly, as kube-proxy does, a reachable backend stays unseen that long with probability < {bound:.0e})"
    )
