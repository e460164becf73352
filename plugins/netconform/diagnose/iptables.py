"""iptables-save parser and a small chain evaluator.

The evaluator walks a table's chain for one synthetic packet the way the kernel
does (first match wins, RETURN goes back to the caller, policy at the end of a
base chain). It understands the matches kube-proxy, flannel and docker write;
a rule with a match it does not understand is skipped and remembered, so a
caller can lower its confidence instead of guessing.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

TERMINAL = {"ACCEPT", "DROP", "REJECT", "MASQUERADE", "SNAT", "DNAT", "REDIRECT"}
CONTINUE = {"LOG", "MARK", "CONNMARK", "NOTRACK", "CT", "NFLOG", "TRACE", "CHECKSUM", "TCPMSS"}


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    args: tuple[str, ...]
    target: str | None
    raw: str  # the line as iptables-save printed it, without the [pkts:bytes] prefix
    packets: int | None = None
    backend: str = ""

    def opt(self, name: str) -> str | None:
        a = self.args
        for i, x in enumerate(a[:-1]):
            if x == name:
                return a[i + 1]
        return None

    @property
    def comment(self) -> str:
        return self.opt("--comment") or ""


@dataclass
class Chain:
    name: str
    policy: str | None  # None for user chains ("-")
    packets: int | None
    rules: list[Rule] = field(default_factory=list)
    raw: str = ""


Tables = dict[str, dict[str, Chain]]


def parse_iptables_save(text: str, backend: str = "") -> Tables:
    tables: Tables = {}
    table: str | None = None
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:].strip()
            tables.setdefault(table, {})
            continue
        if table is None or line == "COMMIT":
            continue
        if line.startswith(":"):
            m = re.match(r"^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?", line)
            if m:
                pol = None if m.group(2) == "-" else m.group(2)
                chain = tables[table].get(m.group(1))
                counted = int(m.group(3)) if m.group(3) else None
                if chain is None:
                    tables[table][m.group(1)] = Chain(m.group(1), pol, counted, raw=line)
                else:  # same chain in a second backend dump: keep rules, merge policy
                    chain.policy = chain.policy or pol
            continue
        pkts: int | None = None
        m = re.match(r"^\[(\d+):(\d+)\]\s+(.*)$", line)
        if m:
            pkts, line = int(m.group(1)), m.group(3)
        try:
            args = tuple(shlex.split(line))
        except ValueError:
            args = tuple(line.split())
        if len(args) < 2 or args[0] not in ("-A", "-I"):
            continue
        chain_name = args[1]
        target = None
        for i, x in enumerate(args[:-1]):
            if x in ("-j", "-g"):
                target = args[i + 1]
        ch = tables[table].setdefault(chain_name, Chain(chain_name, None, None))
        ch.rules.append(Rule(table, chain_name, args[2:], target, line, pkts, backend))
    return tables


def merge_tables(parts: list[Tables]) -> Tables:
    """Union of several backends' tables (legacy and nft rules are both live in the kernel)."""
    out: Tables = {}
    for tables in parts:
        for tname, chains in tables.items():
            dst = out.setdefault(tname, {})
            for cname, ch in chains.items():
                if cname not in dst:
                    dst[cname] = Chain(ch.name, ch.policy, ch.packets, list(ch.rules), ch.raw)
                else:
                    d = dst[cname]
                    # a DROP policy in either backend drops
                    if ch.policy == "DROP" or d.policy is None:
                        d.policy, d.raw, d.packets = ch.policy, ch.raw, ch.packets
                    d.rules.extend(ch.rules)
    return out


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    proto: str = "tcp"
    dport: int | None = None
    sport: int | None = 40000
    in_iface: str | None = None
    out_iface: str | None = None
    mark: int = 0
    ctstate: str = "NEW"
    dst_local: bool = False  # addrtype LOCAL


@dataclass
class Verdict:
    target: str  # ACCEPT/DROP/... or the base chain policy
    rule: Rule | None  # None = the chain policy decided
    policy_line: str = ""
    uncertain: list[Rule] = field(default_factory=list)  # rules skipped because of unknown matches


class _Unknown(Exception):
    pass


def _in_net(ip: str, net: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(net, strict=False)
    except ValueError:
        raise _Unknown(net) from None


def _iface_match(pattern: str, iface: str | None) -> bool:
    if iface is None:
        return False
    if pattern.endswith("+"):
        return iface.startswith(pattern[:-1])
    return iface == pattern


def _port_match(spec: str, port: int | None) -> bool:
    if port is None:
        return False
    for part in spec.split(","):
        if ":" in part:
            lo, hi = part.split(":", 1)
            if int(lo or 0) <= port <= int(hi or 65535):
                return True
        elif part and int(part) == port:
            return True
    return False


def _mark_match(spec: str, mark: int) -> bool:
    val, _, mask = spec.partition("/")
    m = int(mask, 0) if mask else 0xFFFFFFFF
    return (mark & m) == int(val, 0)


def _rule_matches(rule: Rule, pkt: Packet) -> bool:
    """Raise _Unknown for matches we cannot evaluate."""
    a = list(rule.args)
    i = 0
    neg = False
    while i < len(a):
        x = a[i]
        if x == "!":
            neg = True
            i += 1
            continue
        val = a[i + 1] if i + 1 < len(a) else ""
        res: bool | None = None
        step = 2
        if x in ("-s", "--source"):
            res = _in_net(pkt.src, val)
        elif x in ("-d", "--destination"):
            res = _in_net(pkt.dst, val)
        elif x in ("-i", "--in-interface"):
            res = _iface_match(val, pkt.in_iface)
        elif x in ("-o", "--out-interface"):
            res = _iface_match(val, pkt.out_iface)
        elif x in ("-p", "--protocol"):
            res = val in ("all", "0") or val == pkt.proto
        elif x == "-m":
            if val not in (
                "comment",
                "tcp",
                "udp",
                "mark",
                "multiport",
                "addrtype",
                "conntrack",
                "state",
                "statistic",
                "icmp",
            ):
                raise _Unknown(val)
            res = None  # module name itself matches; its options follow
        elif x == "--comment":
            res = None
        elif x in ("--dport", "--destination-port", "--dports"):
            res = _port_match(val, pkt.dport)
        elif x in ("--sport", "--source-port", "--sports"):
            res = _port_match(val, pkt.sport)
        elif x == "--mark":
            res = _mark_match(val, pkt.mark)
        elif x == "--dst-type":
            res = (val == "LOCAL") == pkt.dst_local if val == "LOCAL" else not pkt.dst_local
        elif x in ("--ctstate", "--state"):
            res = pkt.ctstate in val.split(",")
        elif x in ("--mode", "--probability", "--every", "--packet"):
            res = None  # statistic: a load-balancing choice, treat as taken
        elif x in ("-j", "-g"):
            # target options follow; stop matching here
            return True
        elif x in ("--icmp-type",):
            res = pkt.proto == "icmp"
        elif x == "--tcp-flags":
            # `--tcp-flags MASK COMP` (iptables-save's form of --syn): the packets evaluated open a new
            # connection, so only SYN is set among the flags
            comp = set((a[i + 2] if i + 2 < len(a) else "").split(","))
            res = pkt.proto == "tcp" and comp <= {"SYN"}
            step = 3
        else:
            raise _Unknown(x)
        if res is not None and res == neg:
            return False
        neg = False
        i += step
    return True


def _apply_mark(rule: Rule, mark: int) -> int:
    for opt in ("--set-xmark", "--set-mark", "--or-mark"):
        v = rule.opt(opt)
        if not v:
            continue
        val_s, _, mask_s = v.partition("/")
        val, mask = int(val_s, 0), int(mask_s, 0) if mask_s else 0xFFFFFFFF
        if opt == "--or-mark":
            return mark | val
        if opt == "--set-xmark":
            return (mark & ~mask) ^ val
        return (mark & ~mask) | val
    return mark


def evaluate(tables: Tables, table: str, chain: str, pkt: Packet, _depth: int = 0) -> Verdict:
    """Walk `chain` in `table` for `pkt`; returns the deciding target and rule.

    A chain's outcome depends only on the mark it is entered with (and the depth, for the limit): each
    (chain, mark, depth) is walked once, so two jumps per chain cost one walk per chain, not 2**depth."""
    chains = tables.get(table, {})
    uncertain: list[Rule] = []
    mark = pkt.mark
    walked: dict[tuple[str, int, int], tuple[tuple[str, Rule | None] | None, int]] = {}

    def walk(name: str, depth: int) -> tuple[str, Rule | None] | None:
        nonlocal mark
        key = (name, mark, depth)
        if key in walked:
            res, mark = walked[key]
            return res
        res = walk_once(name, depth)
        walked[key] = (res, mark)
        return res

    def walk_once(name: str, depth: int) -> tuple[str, Rule | None] | None:
        nonlocal mark
        if depth > 32:
            return None
        ch = chains.get(name)
        if ch is None:
            return None
        for rule in ch.rules:
            p = Packet(**{**pkt.__dict__, "mark": mark})
            try:
                if not _rule_matches(rule, p):
                    continue
            except _Unknown:
                uncertain.append(rule)
                continue
            t = rule.target
            if t is None:
                continue
            if t == "RETURN":
                return ("RETURN", rule)
            if t == "MARK":
                mark = _apply_mark(rule, mark)
                continue
            if t in TERMINAL:
                return (t, rule)
            if t in CONTINUE:
                continue
            res = walk(t, depth + 1)
            if res is not None and res[0] != "RETURN":
                return res
            if "-g" in rule.args:  # goto: RETURN goes to the caller of this chain
                return res
        return None

    res = walk(chain, 0)
    base = chains.get(chain)
    if res is None or res[0] == "RETURN":
        pol = base.policy if base and base.policy else "ACCEPT"
        return Verdict(pol, None, base.raw if base else "", uncertain)
    return Verdict(res[0], res[1], "", uncertain)


def rules_in(tables: Tables, table: str) -> list[Rule]:
    return [r for ch in tables.get(table, {}).values() for r in ch.rules]
