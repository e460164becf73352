"""`nft -j list ruleset` read for what kube-proxy's nftables mode writes (pure).

kube-proxy (mode nftables) keeps one table per family, `ip kube-proxy` and `ip6 kube-proxy`:
the verdict map `service-ips` (ClusterIP . proto . port -> goto service-<hash>-<ns>/<name>/<proto>/<port>),
`service-nodeports` (proto . port -> goto external-...), and per service a chain whose rule DNATs to
the endpoints (inline `numgen random mod N map { ... }`, or jumps to `endpoint-...` chains in older
releases). Services without endpoints are in `no-endpoint-services` / `no-endpoint-nodeports`.
Other tables (iptables-nft's, a host firewall's) are kept as names only.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from netconform.diagnose.parsers import is_ip

__all__ = ["KUBE_PROXY_TABLE", "KubeProxyTable", "MapEntry", "Ruleset", "parse_ruleset"]

KUBE_PROXY_TABLE = "kube-proxy"


@dataclass(frozen=True)
class MapEntry:
    """One element of a kube-proxy verdict map: key parts (ip, proto, port / proto, port) -> chain."""

    key: tuple[str, ...]
    chain: str
    raw: str  # the element as nft would list it: `10.96.0.10 . udp . 53 : goto service-...`


@dataclass
class KubeProxyTable:
    family: str  # "ip" | "ip6"
    maps: dict[str, list[MapEntry]] = field(default_factory=dict)
    chains: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # chain -> its rules' expr lists
    sets: dict[str, list[str]] = field(default_factory=dict)

    def service(self, ip: str, proto: str, port: int) -> MapEntry | None:
        want = (_norm_ip(ip), proto.lower(), str(port))
        return next((e for e in self.maps.get("service-ips", []) if e.key == want), None)

    def nodeport(self, proto: str, port: int) -> MapEntry | None:
        want = (proto.lower(), str(port))
        return next((e for e in self.maps.get("service-nodeports", []) if e.key == want), None)

    def no_endpoints(self, ip: str, proto: str, port: int) -> MapEntry | None:
        want = (_norm_ip(ip), proto.lower(), str(port))
        return next((e for e in self.maps.get("no-endpoint-services", []) if e.key == want), None)

    def dnat_targets(self, chain: str) -> set[str]:
        """Every address a packet entering `chain` may be DNATed to (following jump/goto, bounded)."""
        out: set[str] = set()
        seen: set[str] = set()
        todo = [chain]
        while todo and len(seen) < 256:
            c = todo.pop()
            if c in seen:
                continue
            seen.add(c)
            for expr in self.chains.get(c, []):
                for node in _walk(expr):
                    if "dnat" in node and isinstance(node["dnat"], dict):
                        out |= {a for a in _leaf_strings(node["dnat"].get("addr")) if is_ip(a)}
                    for verb in ("jump", "goto"):
                        tgt = node.get(verb)
                        if isinstance(tgt, dict) and isinstance(tgt.get("target"), str):
                            todo.append(tgt["target"])
        return out


@dataclass
class Ruleset:
    tables: list[tuple[str, str]] = field(default_factory=list)  # (family, name) of every table
    kube_proxy: dict[str, KubeProxyTable] = field(default_factory=dict)  # family -> table
    error: str | None = None  # the output was not nft's JSON

    @property
    def has_kube_proxy(self) -> bool:
        return bool(self.kube_proxy)


def parse_ruleset(text: str) -> Ruleset:
    """`nft -j list ruleset` -> the kube-proxy tables (and the names of all tables)."""
    rs = Ruleset()
    start = text.find("{")
    if start < 0:
        rs.error = "no JSON in the output" if text.strip() else None
        return rs
    try:
        data = json.loads(text[start:])
    except RecursionError:
        rs.error = "not nft JSON: nested too deeply"
        return rs
    except ValueError:
        try:  # a warning after the JSON document
            data, _ = json.JSONDecoder().raw_decode(text[start:])
        except (ValueError, RecursionError) as exc:
            rs.error = f"not nft JSON: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
            return rs
    items = data.get("nftables", []) if isinstance(data, dict) else []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        kind, body = next(iter(item.items()))
        if not isinstance(body, dict):
            continue
        if kind == "table":
            rs.tables.append((str(body.get("family")), str(body.get("name"))))
            if body.get("name") == KUBE_PROXY_TABLE:
                rs.kube_proxy.setdefault(str(body.get("family")), KubeProxyTable(str(body.get("family"))))
            continue
        if body.get("table") != KUBE_PROXY_TABLE:
            continue
        t = rs.kube_proxy.setdefault(str(body.get("family")), KubeProxyTable(str(body.get("family"))))
        if kind == "map":
            t.maps[str(body.get("name"))] = [_map_entry(e) for e in body.get("elem", []) or []]
        elif kind == "set":
            t.sets[str(body.get("name"))] = [
                " . ".join(_leaf_strings(e)) for e in body.get("elem", []) or [] if _leaf_strings(e)
            ]
        elif kind == "chain":
            t.chains.setdefault(str(body.get("name")), [])
        elif kind == "rule":
            t.chains.setdefault(str(body.get("chain")), []).append({"expr": body.get("expr", [])})
    return rs


def _map_entry(elem: Any) -> MapEntry:
    key, verdict = (elem[0], elem[1]) if isinstance(elem, list) and len(elem) == 2 else (elem, None)
    if isinstance(key, dict) and "elem" in key:  # {"elem": {"val": ..., "comment": ...}}
        key = key["elem"].get("val")
    parts = tuple(_norm_ip(p) if is_ip(p) else p.lower() for p in _leaf_strings(key))
    chain = ""
    if isinstance(verdict, dict):
        for verb in ("goto", "jump"):
            if isinstance(verdict.get(verb), dict):
                chain = str(verdict[verb].get("target", ""))
                raw_verdict = f"{verb} {chain}"
                break
        else:
            raw_verdict = next(iter(verdict), "")
    else:
        raw_verdict = str(verdict or "")
    return MapEntry(parts, chain, f"{' . '.join(parts)} : {raw_verdict}".strip())


def _walk(x: Any) -> Iterator[dict[str, Any]]:
    if isinstance(x, dict):
        yield x
        for v in x.values():
            yield from _walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from _walk(v)


def _leaf_strings(x: Any) -> list[str]:
    """Scalars of a key/address expression in order (concat parts, prefix addresses)."""
    if isinstance(x, bool) or x is None:
        return []
    if isinstance(x, (str, int)):
        return [str(x)]
    if isinstance(x, dict):
        if "prefix" in x and isinstance(x["prefix"], dict):
            return [f"{x['prefix'].get('addr')}/{x['prefix'].get('len')}"]
        out: list[str] = []
        for v in x.values():
            out += _leaf_strings(v)
        return out
    if isinstance(x, list):
        out = []
        for v in x:
            out += _leaf_strings(v)
        return out
    return []


def _norm_ip(s: str) -> str:
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        return s
