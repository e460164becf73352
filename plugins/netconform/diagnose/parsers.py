"""Pure parsers for node command output (iproute2, bridge, sysctl, conntrack, nstat, netstat)."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

_MAC = r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}"


@dataclass(frozen=True)
class Link:
    name: str
    mtu: int | None
    flags: frozenset[str]
    mac: str | None
    kind: str | None  # "vxlan", "bridge", "veth", None
    master: str | None
    state: str | None
    details: dict[str, str] = field(default_factory=dict)  # vxlan: id, local, dev, dstport; bridge_slave: hairpin
    raw: tuple[str, ...] = ()

    @property
    def up(self) -> bool:
        return "UP" in self.flags


_LINK_HEAD = re.compile(r"^(\d+):\s+([^:@\s]+)(?:@(\S+?))?:\s+<([^>]*)>(.*)$")


def parse_ip_link(text: str) -> dict[str, Link]:
    """`ip -d link show` -> links by name."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if _LINK_HEAD.match(line):
            blocks.append([line])
        elif blocks and line.startswith((" ", "\t")):
            blocks[-1].append(line)
    links: dict[str, Link] = {}
    for block in blocks:
        m = _LINK_HEAD.match(block[0])
        assert m
        name, flags, rest = m.group(2), m.group(4), m.group(5)
        words = rest.split()
        kv = {words[i]: words[i + 1] for i in range(len(words) - 1)}
        mtu = int(kv["mtu"]) if kv.get("mtu", "").isdigit() else None
        mac = None
        kind = None
        details: dict[str, str] = {}
        for line in block[1:]:
            w = line.split()
            if not w:
                continue
            if w[0].startswith("link/") and len(w) > 1 and re.fullmatch(_MAC, w[1]):
                mac = w[1].lower()
            elif w[0] == "vxlan":
                kind = "vxlan"
                for key in ("id", "local", "dev", "dstport", "remote", "group"):
                    if key in w and w.index(key) + 1 < len(w):
                        details[key] = w[w.index(key) + 1]
                details["learning"] = "0" if "nolearning" in w else "1"
            elif w[0] in ("bridge", "veth", "dummy", "ipip", "geneve") and kind is None:
                kind = w[0]
            elif w[0] == "bridge_slave" and "hairpin" in w:
                details["hairpin"] = w[w.index("hairpin") + 1]
        links[name] = Link(
            name=name,
            mtu=mtu,
            flags=frozenset(flags.split(",")) if flags else frozenset(),
            mac=mac,
            kind=kind,
            master=kv.get("master"),
            state=kv.get("state"),
            details=details,
            raw=tuple(block),
        )
    return links


@dataclass(frozen=True)
class Neigh:
    ip: str
    mac: str | None
    dev: str | None
    states: tuple[str, ...]
    raw: str


def parse_neigh(text: str, dev: str | None = None) -> list[Neigh]:
    """`ip neigh show [dev X]` lines. With `dev X` the output omits the dev column."""
    out: list[Neigh] = []
    for line in text.splitlines():
        w = line.split()
        if not w or not re.match(r"^[0-9a-fA-F.:]+$", w[0]) or "." not in w[0] and ":" not in w[0]:
            continue
        mac = w[w.index("lladdr") + 1].lower() if "lladdr" in w and w.index("lladdr") + 1 < len(w) else None
        d = w[w.index("dev") + 1] if "dev" in w else dev
        states = tuple(x for x in w if x.isupper())
        out.append(Neigh(ip=w[0], mac=mac, dev=d, states=states, raw=line.strip()))
    return out


@dataclass(frozen=True)
class FdbEntry:
    mac: str
    dst: str | None
    dev: str | None
    flags: tuple[str, ...]
    raw: str


def parse_fdb(text: str, dev: str | None = None) -> list[FdbEntry]:
    """`bridge fdb show dev X` lines: `<mac> [dev X] [dst IP] self permanent`."""
    out: list[FdbEntry] = []
    for line in text.splitlines():
        w = line.split()
        if not w or not re.fullmatch(_MAC, w[0]):
            continue
        dst = w[w.index("dst") + 1] if "dst" in w else None
        d = w[w.index("dev") + 1] if "dev" in w else dev
        flags = tuple(x for x in w[1:] if x in ("self", "permanent", "master", "static", "extern_learn"))
        out.append(FdbEntry(mac=w[0].lower(), dst=dst, dev=d, flags=flags, raw=line.strip()))
    return out


@dataclass(frozen=True)
class Route:
    dst: str  # "default" or CIDR/host
    via: str | None
    dev: str | None
    onlink: bool
    raw: str


def parse_routes(text: str) -> list[Route]:
    """`ip route show` lines."""
    out: list[Route] = []
    for line in text.splitlines():
        w = line.split()
        if not w or line.startswith((" ", "\t")):
            continue
        if w[0] in ("unreachable", "blackhole", "prohibit", "broadcast", "local", "unicast"):
            w = w[1:]
            if not w:
                continue
        dst = w[0]
        if dst != "default" and "/" not in dst and re.match(r"^\d+\.\d+\.\d+\.\d+$", dst):
            dst = dst + "/32"
        via = w[w.index("via") + 1] if "via" in w else None
        dev = w[w.index("dev") + 1] if "dev" in w else None
        out.append(Route(dst=dst, via=via, dev=dev, onlink="onlink" in w, raw=line.strip()))
    return out


def parse_sysctl(text: str) -> dict[str, str]:
    """`sysctl a b c` -> {"a": "1"}; error lines for absent keys are skipped (absent = missing key)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([\w.\-/]+)\s*=\s*(.*)$", line.strip())
        if m and not line.startswith("sysctl:"):
            out[m.group(1).replace("/", ".")] = m.group(2).strip()
    return out


def sysctl_line(text: str, key: str) -> str | None:
    """The verbatim output line for one key (for evidence)."""
    for line in text.splitlines():
        if line.strip().startswith(key + " ") or line.strip().startswith(key + "="):
            return line.strip()
    return None


def parse_conntrack_stats(text: str) -> dict[str, int]:
    """`conntrack -S` per-cpu lines summed: {"insert_failed": 3, "drop": 0, ...}."""
    total: dict[str, int] = {}
    for line in text.splitlines():
        for key, val in re.findall(r"(\w+)=(\d+)", line):
            if key == "cpu":
                continue
            total[key] = total.get(key, 0) + int(val)
    return total


def parse_nstat(text: str) -> dict[str, int]:
    """`nstat -asz` lines `TcpExtPAWSPassive  3  0.0`."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) >= 2 and re.fullmatch(r"[A-Z][A-Za-z0-9]+", w[0]) and w[1].isdigit():
            out[w[0]] = int(w[1])
    return out


def netstat_counter(text: str, phrase: str) -> tuple[int, str] | None:
    """`netstat -s`: the number on the line containing `phrase`, and the line itself."""
    for line in text.splitlines():
        if phrase in line:
            m = re.search(r"(\d+)", line)
            if m:
                return int(m.group(1)), line.strip()
    return None


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=value lines (subnet.env, /run/flannel/docker); quotes stripped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip().strip('"').strip("'")
    return out


def parse_hairpin(text: str) -> dict[str, int]:
    """`grep -H . /sys/class/net/*/brport/hairpin_mode` -> {port: 0|1}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^/sys/class/net/([^/]+)/brport/hairpin_mode:(\d+)$", line.strip())
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def parse_addrs(text: str) -> dict[str, list[str]]:
    """`ip -o addr show` -> {ifname: ["10.244.1.0/32", ...]} (IPv4 and IPv6)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) >= 4 and w[2] in ("inet", "inet6"):
            out.setdefault(w[1].split("@")[0], []).append(w[3])
    return out


def is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address (not a name, not a network)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_cni_plugin_types(text: str) -> list[str]:
    """The plugin binaries the CNI config(s) in /etc/cni/net.d call, in order: each plugin's `type`, a
    delegate's (flannel's bridge) and an IPAM's. `cat *.conf*` concatenates the files: each JSON document
    is read in turn; what is not JSON is skipped (a bounded scan: at most 64 documents)."""
    types: list[str] = []
    decoder, pos, docs = json.JSONDecoder(), 0, 0
    while docs < 64:
        start = text.find("{", pos)
        if start < 0:
            break
        try:
            doc, pos = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        docs += 1
        plugins = doc.get("plugins") if isinstance(doc, dict) else None
        for plugin in plugins if isinstance(plugins, list) else [doc]:
            if not isinstance(plugin, dict):
                continue
            kinds = [
                part.get("type")
                for part in (plugin, plugin.get("delegate"), plugin.get("ipam"))
                if isinstance(part, dict)
            ]
            if plugin.get("type") == "flannel":  # flannel's plugin fills in its delegate: bridge, host-local IPAM
                found = plugin.get("delegate")
                delegate: dict[str, Any] = found if isinstance(found, dict) else {}
                kinds += [] if delegate.get("type") else ["bridge"]
                kinds += [] if isinstance(delegate.get("ipam"), dict) else ["host-local"]
            for kind in kinds:
                if isinstance(kind, str) and re.fullmatch(r"[A-Za-z0-9._-]{1,64}", kind) and kind not in types:
                    types.append(kind)
    return types
