"""Seed incident 2's shape without tcp_tw_recycle: per-source state on a node drops a source's later
connections while its first one passes (issue 10 item 5(d)).

Behind NAT every pod of a node is one source, so a per-source limit in the node's firewall (`-m recent`
with --rcheck/--update, `-m connlimit`, `-m hashlimit`) lets the first connection through and drops the
next ones: the stability checks (many sequential connections from one source) fail while single-shot
checks pass. Where the kernel still has tcp_tw_recycle the same pattern is the timestamp/PAWS problem
(rules/tw_recycle.py). The rule reads the firewall as iptables-save printed it, counters included.

The dial results say the same from the other side (diagnose.dialseq): "from lab-node-1's pod to
lab-node-2:30387 the first connection passed, the next 5 timed out". That pattern through a node raises
a found limit's confidence and is quoted with it; where it shows and no rule finds per-source state on
the nodes it went through (here or tcp_tw_recycle), `per-source-pattern` names the pattern and what to look
for, with a lower confidence: the pattern is observed, its cause is not.
"""

from __future__ import annotations

from netconform.checks import NODEPORT, STABILITY

from .. import iptables
from ..dialseq import SourcePattern
from ..evidence import ClusterEvidence
from ..iptables import rules_in
from ..model import Finding, Scope, scope
from ._rule import Rule
from ._util import inspected, pattern_evidence, quote_rule
from .tw_recycle import recycling

CAUSE = "per-source-limit"
PATTERN_CAUSE = "per-source-pattern"
PATTERN_CONFIDENCE = 0.4  # the symptom seen in the dials, no cause found on the nodes
_MODULES = ("recent", "connlimit", "hashlimit")


def _module(r: iptables.Rule) -> str | None:
    mods = [r.args[i + 1] for i, a in enumerate(r.args[:-1]) if a == "-m"]
    for m in _MODULES:
        if m in mods:
            if m == "recent" and not {"--rcheck", "--update"} & set(r.args):
                return None  # `--set` only records the source; the drop is another rule
            return m
    return None


def rule(ev: ClusterEvidence) -> list[Finding]:
    out = _limits(ev)
    return out + _patterns_unexplained(ev, {f.node for f in out if f.node})


def _limits(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    for ne, _ in inspected(ev):
        if not ne.has("iptables"):
            continue
        for table in ("raw", "mangle", "nat", "filter"):
            rules = rules_in(ne.tables, table)
            for r in rules:
                mod = _module(r)
                if mod is None or r.target not in ("DROP", "REJECT"):
                    continue
                evidence = [f"{ne.node}$ iptables-save -t {table}: {quote_rule(r)}"]
                name = r.opt("--name")
                if mod == "recent":
                    setter = [x for x in rules if _module(x) is None and "--set" in x.args and x.opt("--name") == name]
                    evidence += [f"{ne.node}$ iptables-save -t {table}: {quote_rule(x)}" for x in setter[:2]]
                dropped = r.packets or 0
                quoted, first_ok = pattern_evidence(ev, ne.node)
                evidence += quoted
                confidence = (0.95 if first_ok else 0.9) if dropped else 0.85 if first_ok else 0.6
                port = r.opt("--dport") or r.opt("--dports")
                out.append(
                    Finding(
                        cause=CAUSE,
                        title=f"{ne.node} drops a source's later connections ({table}/{r.chain}, -m {mod}"
                        + (f", dport {port}" if port else "")
                        + f"): the first connection from a source passes, the next ones {'are dropped' if r.target == 'DROP' else 'are rejected'}"
                        + (f" ({dropped} packets so far)" if dropped else ""),
                        confidence=confidence,
                        node=ne.node,
                        evidence=tuple(evidence),
                        fix=f"on {ne.node}: iptables -t {table} -D {r.raw[3:]}"
                        + (f" (and the --set rule of list {name})" if mod == "recent" and name else "")
                        + "; behind NAT every pod of a node is one source: limit per pod, not per address",
                        explains=(scope(checks=[STABILITY, NODEPORT], dst_nodes=[ne.node]),),
                        detail="intermittent: single connections pass, repeated ones from the same (NATed) "
                        "source time out (SYN without SYN-ACK)",
                    )
                )
    return out


def _patterns_unexplained(ev: ClusterEvidence, limited: set[str]) -> list[Finding]:
    """A first-ok-then-timeouts pattern through no node where a limit or tcp_tw_recycle=1 was found."""
    out = []
    for p in ev.patterns:
        if not p.first_ok:
            continue
        through = [n for n in (p.dst_node, p.src_node if p.src_in_cluster else None) if n]
        if any(n in limited or (n in ev.nodes and recycling(ev.nodes[n])) for n in through):
            continue
        where = p.where(p.port)
        nodes = " and ".join(dict.fromkeys(through)) or "the nodes"
        look = f"look on {p.dst_node}" if p.dst_node else f"look on the nodes behind {where}"
        if p.src_in_cluster and p.src_node != p.dst_node:
            look += f", on {p.src_node} (the source's node: its NAT and firewall)"
        out.append(
            Finding(
                cause=PATTERN_CAUSE,
                title=f"{where} answered a source's first connection and timed out on its later ones: per-source state "
                f"drops them, and no rule found it on {nodes}",
                confidence=PATTERN_CONFIDENCE,
                node=p.dst_node,
                evidence=(f"dials: {p.quote()}",),
                fix=f"{look} and anything between for per-source state: net.ipv4.tcp_tw_recycle=1 with TCP timestamps "
                "(kernels before 4.12; `netstat -s`: passive connections rejected because of time stamp), a "
                "per-source limit in the firewall (iptables -m recent/connlimit/hashlimit, nft meter/limit/ct count), "
                "a cloud firewall's or load balancer's per-source connection limit; compare the source's SYNs with "
                "what arrives (tcpdump on both ends)",
                explains=(_pattern_scope(p),),
                detail="intermittent: the first connection from a source passes, later ones time out "
                "(SYN without SYN-ACK); the pattern is from the dial results, no node state was found to cause it",
            )
        )
    return out


def _pattern_scope(p: SourcePattern) -> Scope:
    checks = [*p.checks, STABILITY, NODEPORT]
    if p.dst_node:  # the leg to the node's address: not the NodePort's further legs to its backends
        return scope(checks=checks, src_nodes=[p.src_node], dst_nodes=[p.dst_node], underlay_only=True)
    return scope(checks=checks, src_nodes=[p.src_node], target_ports=p.ports)


RULE = Rule(
    cause=CAUSE,
    category="per-source state drops a source's later connections",
    run=rule,
    also=((PATTERN_CAUSE, "a source's first connection passes, its later ones time out; no per-source state found"),),
)
