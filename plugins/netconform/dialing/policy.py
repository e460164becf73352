"""The NetworkPolicy check's rounds: after the fan-out dialed every policy target with no policy in
place, create the policies, then dial the policy plan (netconform.dialing.plan.network_policy_plan:
one exec per pod, all concurrently) round after round until the policy is in effect (every client
denied, the allowed client through) or the bound has passed. The verdicts read the last round.

A denial is any failed attempt: an enforcing CNI drops a denied packet (Cilium, Calico: a TCP SYN or
a UDP datagram unanswered, a timeout after --dial-timeout), some reject it (a reset, refused,
unreachable). The allowed client reaching the same target in the same round is what makes such a
failure a denial and not a dead pod or a broken path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from netconform.dialing.fanout import dial_all
from netconform.dialing.model import DialResult, Source, SourceOutcome, Target
from netconform.dialing.probe import worst_case_seconds

__all__ = ["ENFORCE_WAIT_S", "PolicyRun", "denied", "in_effect", "run_rounds", "worst_case_s"]

# How long a created policy may take to be enforced before "not enforced" is the verdict. CNIs apply
# a policy asynchronously, from their watch of the API: Cilium's agent regenerates the selected
# endpoints' programs and Calico's Felix reprograms the workload interfaces, each within a few
# seconds even on a loaded node (sub-second on an idle one). 30 s is ten times that; a policy not in
# effect by then leaves the operator's own policies unenforced just as long: a finding either way.
ENFORCE_WAIT_S = 30.0
# Pauses between rounds, doubling (a round is one exec per pod; denied dials take --dial-timeout):
# about ten rounds in the bound when nothing is enforced.
FIRST_PAUSE_S, MAX_PAUSE_S = 0.5, 4.0


def denied(result: DialResult) -> bool:
    """Every attempt failed (timed out, refused, reset, unreachable): the probe got no answer."""
    return bool(result.attempts) and not any(a.ok for a in result.attempts)


def in_effect(outcomes: dict[str, SourceOutcome], allowed_pod: str) -> bool:
    """The round shows the policies enforced: every client pod denied at every target, the allowed
    client answered by every target. A pod whose probe could not run shows nothing: not in effect."""
    for pod, outcome in outcomes.items():
        if outcome.error or not outcome.results:
            return False
        if pod == allowed_pod:
            if not all(r.ok for r in outcome.results):
                return False
        elif not all(denied(r) for r in outcome.results):
            return False
    return bool(outcomes)


@dataclass
class PolicyRun:
    """The last round of the check, by pod name, and how it got there (JSON-able: shared with workers)."""

    outcomes: dict[str, SourceOutcome]
    allowed_pod: str
    in_effect: bool
    rounds: int
    waited_s: float  # from the policies' creation to the end of the last round
    policies: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcomes": {pod: o.to_dict() for pod, o in self.outcomes.items()},
            "allowed_pod": self.allowed_pod,
            "in_effect": self.in_effect,
            "rounds": self.rounds,
            "waited_s": self.waited_s,
            "policies": self.policies,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyRun:
        return cls(
            outcomes={pod: SourceOutcome.from_dict(o) for pod, o in data["outcomes"].items()},
            allowed_pod=data["allowed_pod"],
            in_effect=data["in_effect"],
            rounds=data["rounds"],
            waited_s=data["waited_s"],
            policies=list(data["policies"]),
        )


def worst_case_s(plan: dict[Source, list[Target]], timeout_ms: int, wait_s: float = ENFORCE_WAIT_S) -> float:
    """The longest `run_rounds` may take: the bound, then one more round whose every exec is tried
    twice with every dial timing out (netconform.dialing.fanout.dial_from), and the creates."""
    worst = max((worst_case_seconds(t, timeout_ms) for t in plan.values()), default=0.0)
    return wait_s + 2 * (worst + 15.0) + 30.0


def run_rounds(
    configuration: k8s.Configuration,
    namespace: str,
    plan: dict[Source, list[Target]],
    allowed_pod: str,
    timeout_ms: int,
    create: Callable[[], list[str]],
    wait_s: float = ENFORCE_WAIT_S,
) -> PolicyRun:
    """Create the policies (`create` raises ProbeSetupError when the API refuses), then dial until the
    round is `in_effect` or `wait_s` has passed since the creation; a round begun before the bound ends."""
    policies = create()
    started = time.monotonic()
    pause, rounds = FIRST_PAUSE_S, 0
    while True:
        outcomes = {o.source.pod: o for o in dial_all(configuration, namespace, plan, timeout_ms)}
        rounds += 1
        done = in_effect(outcomes, allowed_pod)
        elapsed = time.monotonic() - started
        if done or elapsed >= wait_s:
            return PolicyRun(outcomes, allowed_pod, done, rounds, round(elapsed, 2), policies)
        time.sleep(min(pause, wait_s - elapsed))
        pause = min(pause * 2, MAX_PAUSE_S)
