"""The checks the suites make, one entry each: the one place a check's name, incident and labels live.

A new check is a `suites/test_<name>.py` module plus one `Check` in `CHECKS` (tests/unit/test_checks.py
fails when the two disagree). Planning, Allure labels, correlation and the rules' scopes read these names;
the probe protocol "dns" is a different thing (netconform.dialing), not this check.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CHECKS",
    "DNS",
    "HAIRPIN",
    "MTU",
    "NETWORK_POLICY",
    "NODEPORT",
    "POD_TO_POD",
    "SERVICE",
    "SOURCE_IP",
    "STABILITY",
    "Check",
    "by_name",
    "check_of",
]

POD_TO_POD = "pod_to_pod"
SERVICE = "service"
DNS = "dns"
NODEPORT = "nodeport"
STABILITY = "stability"
SOURCE_IP = "source_ip"
MTU = "mtu"
HAIRPIN = "hairpin"
NETWORK_POLICY = "network_policy"


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str  # suites/test_<name>.py
    guards: str  # the incident it guards against, in a line
    epic: str  # Allure epic: the network path
    severity: str  # Allure severity of its failures
    # the paths it rides on: a failure of it is also a failure of one of these (which one: correlate)
    rides_on: tuple[str, ...] = ()


# in report order: pod to pod is what every other path rides on
CHECKS: tuple[Check, ...] = (
    Check(
        name=POD_TO_POD,
        guards="pods on one node cannot reach pods on another (the overlay)",
        epic="Pod to pod",
        severity="blocker",
    ),
    Check(
        name=SERVICE,
        guards="a ClusterIP does not reach every backend (kube-proxy rules, endpoints)",
        epic="ClusterIP Service",
        severity="critical",
    ),
    Check(
        name=DNS, guards="Service names do not resolve, or not to what the API says", epic="DNS", severity="critical"
    ),
    Check(
        name=NODEPORT,
        guards="a node's InternalIP:NodePort does not answer, from pods or from outside",
        epic="NodePort",
        severity="critical",
    ),
    Check(
        name=STABILITY,
        guards="some of many consecutive new connections fail (conntrack, stale backends)",
        epic="Connection stability",
        severity="normal",
        rides_on=(NODEPORT, SERVICE),
    ),
    Check(
        name=SOURCE_IP,
        guards="the server sees a rewritten source address instead of the client pod's",
        epic="Source IP",
        severity="normal",
    ),
    Check(
        name=MTU,
        guards="full-size packets are dropped between nodes while small ones pass",
        epic="Path MTU",
        severity="critical",
        rides_on=(POD_TO_POD, SERVICE),
    ),
    Check(
        name=HAIRPIN,
        guards="a pod cannot reach itself through its own Service",
        epic="Hairpin",
        severity="normal",
        rides_on=(SERVICE,),
    ),
    Check(
        name=NETWORK_POLICY,
        guards="NetworkPolicy objects are accepted but not enforced (or not from every node)",
        epic="NetworkPolicy",
        severity="critical",
        rides_on=(POD_TO_POD,),
    ),
)

_BY_NAME = {c.name: c for c in CHECKS}


def by_name(name: str) -> Check | None:
    return _BY_NAME.get(name)


def check_of(module_name: str) -> str:
    """`suites.test_pod_to_pod` or `test_pod_to_pod` -> `pod_to_pod`."""
    return module_name.rsplit(".", 1)[-1].removeprefix("test_")
