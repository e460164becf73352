"""Seed incident 2's shape without tcp_tw_recycle: per-source state on a node drops a source's later
connections while its first one passes (issue 10 item 5(d)).

Behind NAT every pod of a node is one source, so a per-source limit in the node's firewall (`-m recent`
with --rcheck/--update, `-m connlimit`, `-m hashlimit`) lets the first connection through and drops the
next ones: the stability checks (many sequential connections from one source) fail while single-shot
checks pass. Where the kernel still has tcp_tw_recycle the same pattern is the timestamp/PAWS problem
(rules/tw_recycle.py). The rule reads the firewall as iptables-save printed it, counters included.
"""

from __future__ import annotations

from ..evidence import ClusterEvidence
from ..iptables import Rule, rules_in
from ..model import Finding, scope
from ._util import inspected, quote_rule

CAUSE = "per-source-limit"
_MODULES = ("recent", "connlimit", "hashlimit")


def _module(r: Rule) -> str | None:
    mods = [r.args[i + 1] for i, a in enumerate(r.args[:-1]) if a == "-m"]
    for m in _MODULES:
        if m in mods:
            if m == "recent" and not {"--rcheck", "--update"} & set(r.args):
                return None  # `--set` only records the source; the drop is another rule
            return m
    return None


def rule(ev: ClusterEvidence) -> list[Finding]:
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
                port = r.opt("--dport") or r.opt("--dports")
                out.append(
                    Finding(
                        CAUSE,
                        f"{ne.node} drops a source's later connections ({table}/{r.chain}, -m {mod}"
                        + (f", dport {port}" if port else "")
                        + f"): the first connection from a source passes, the next ones {'are dropped' if r.target == 'DROP' else 'are rejected'}"
                        + (f" ({dropped} packets so far)" if dropped else ""),
                        0.9 if dropped else 0.6,
                        ne.node,
                        tuple(evidence),
                        f"on {ne.node}: iptables -t {table} -D {r.raw[3:]}"
                        + (f" (and the --set rule of list {name})" if mod == "recent" and name else "")
                        + "; behind NAT every pod of a node is one source: limit per pod, not per address",
                        (scope(checks=["stability", "nodeport"], dst_nodes=[ne.node]),),
                        detail="intermittent: single connections pass, repeated ones from the same (NATed) "
                        "source time out (SYN without SYN-ACK)",
                    )
                )
    return out
