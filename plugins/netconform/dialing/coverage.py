"""How many connections a "reaches every backend" check may make before a missing backend is a verdict.

A Service balances each new connection to one of its N ready backends at random (kube-proxy's
iptables `statistic --mode random` and nftables `numgen random` are uniform). The probe dials until
it has seen every backend answer, so a healthy Service usually costs about N * H(N) connections
(coupon collector: 6 at N=3, 37 at 12, 519 at 100). Only when a backend stays unseen does the count
matter: after k connections a given reachable backend is missed with probability (1 - 1/N)^k, so
some backend is missed with probability at most N * (1 - 1/N)^k (union bound). A run makes
`checks` such verdicts (one per source and protocol); to keep the chance that any of them is a false
failure below `FALSE_FAILURE_PER_RUN`, each may dial at most

    k = ceil( ln(checks * N / FALSE_FAILURE_PER_RUN) / -ln(1 - 1/N) )

connections: 59 at N=3 (6 checks), 304 at 12, 3,048 at 100, about 35,200 at 1000. A backend not
seen after k connections is reported as never answering, and the message says how many tries the
verdict rests on. A backend that does not answer at all fails faster: the probe stops a target
after a few failed connections (max_failures), which is a network verdict of its own.
"""

from __future__ import annotations

import math

__all__ = ["FALSE_FAILURE_PER_RUN", "backend_tries", "false_failure_bound"]

FALSE_FAILURE_PER_RUN = 1e-9


def backend_tries(backends: int, checks: int, target: float = FALSE_FAILURE_PER_RUN) -> int:
    """Connections one check may make so that all `checks` of a run together fail falsely with P < target."""
    if backends <= 1:
        return 3  # one backend: nothing is left to chance; a few tries tell a flake from a dead path
    per_miss = -math.log1p(-1.0 / backends)
    return math.ceil(math.log(max(checks, 1) * backends / target) / per_miss)


def false_failure_bound(backends: int, tries: int, checks: int = 1) -> float:
    """Upper bound on P(some reachable backend unseen in `tries` connections) over `checks` checks."""
    if backends <= 1:
        return 0.0
    return min(1.0, checks * backends * (1.0 - 1.0 / backends) ** tries)
