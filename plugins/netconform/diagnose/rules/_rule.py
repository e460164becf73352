"""What a rule module declares about itself, once, as `RULE = Rule(...)` (the registry: rules/__init__.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..datapath import COVERED_BACKENDS, Datapath
from ..evidence import ClusterEvidence
from ..model import Finding

__all__ = ["ANY", "FLANNEL", "FLANNEL_VXLAN", "VXLAN_TUNNEL", "Datapaths", "Rule"]

# a cause id is matched unescaped in the report's categories (netconform.reporting.categories)
_CAUSE_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


@dataclass(frozen=True, kw_only=True)
class Datapaths:
    """The datapaths a rule judges, as diagnose.datapath reads them; a field left None = any.

    A rule never judges a datapath it does not know. A rule that needs another distinction (the CNI,
    kube-proxy's mode, the IP family) gets a field here that reads the same attribute of `Datapath`.
    """

    backends: tuple[str, ...] | None = None  # flannel's backend (Datapath.backend): "vxlan", "host-gw"
    cilium: tuple[str, ...] = ()  # Cilium's modes (Datapath.cilium) a narrowed rule also judges: "vxlan tunnel"

    def cover(self, dp: Datapath) -> bool:
        if self.backends is None:
            return True
        return dp.cilium in self.cilium if dp.cilium else dp.backend in self.backends


ANY = Datapaths()
FLANNEL = Datapaths(backends=COVERED_BACKENDS)  # flannel's routes: on a backend the rules know
FLANNEL_VXLAN = Datapaths(backends=("vxlan",))  # flannel's VXLAN device (flannel.1)
VXLAN_TUNNEL = Datapaths(backends=("vxlan",), cilium=("vxlan tunnel",))  # a VXLAN device: flannel.1, cilium_vxlan


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One diagnosis rule: the cause its findings carry, where it applies, how the report files it."""

    cause: str  # stable id, e.g. "stale-flannel-arp"
    # its Allure category: "<category> [<cause>]", matched on the failure's `root cause: <cause>` line;
    # None for a rule whose findings are notes only (confidence 0: never a test's root cause)
    category: str | None
    run: Callable[[ClusterEvidence], list[Finding]]  # pure: evidence in, findings out
    applies: Datapaths = ANY
    also: tuple[tuple[str, str], ...] = ()  # (cause, category) of the other causes its findings carry

    def __post_init__(self) -> None:
        for cause in (self.cause, *(c for c, _ in self.also)):
            if not _CAUSE_ID.fullmatch(cause):
                raise ValueError(f"cause id {cause!r}: lower-case words joined by '-'")

    def categories(self) -> list[tuple[str, str]]:
        """(cause, category) of every cause it reports as a root cause."""
        return ([(self.cause, self.category)] if self.category else []) + list(self.also)
