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


# ---------------------------------------------------------------- nslookup (busybox) per CoreDNS pod

NSLOOKUP_MARK = "#nc-nslookup"
DnsQuery = tuple[str, str, str]  # (fully qualified name, server IP, "a" | "aaaa")


@dataclass(frozen=True)
class DnsAnswer:
    """One `nslookup -type=T NAME SERVER` as run: addresses answered, or why none."""

    qtype: str
    name: str
    server: str
    addresses: tuple[str, ...] = ()
    status: str = "answered"  # answered | NXDOMAIN | SERVFAIL | ... | no answer (timeout, unreachable)
    raw: str = ""  # the answer lines, quoted as evidence

    @property
    def answered(self) -> bool:
        return self.status != "no answer"


def parse_nslookups(text: str) -> list[DnsAnswer]:
    """The `dns` section: `#nc-nslookup TYPE NAME SERVER` then busybox nslookup's output."""
    out: list[DnsAnswer] = []
    blocks = re.split(rf"^{NSLOOKUP_MARK} ", text, flags=re.M)
    for block in blocks[1:]:
        head, _, body = block.partition("\n")
        parts = head.split()
        if len(parts) != 3:
            continue
        qtype, name, server = parts
        addrs: list[str] = []
        in_answer = False
        status = "no answer"
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("Name:"):
                in_answer = True
            elif line.startswith("Address:") and in_answer:
                ip = line.split(None, 1)[1].strip() if len(line.split(None, 1)) > 1 else ""
                if is_ip(ip):
                    addrs.append(ip)
            m = re.search(r"server can't find \S+: (\S+)", line)
            if m:
                status = m.group(1)
        if addrs:
            status = "answered"
        elif status == "no answer" and re.search(r"^Address:\s+\S+:53$", body, re.M) and "timed out" not in body:
            status = "answered"  # the server answered with no record of that type (busybox prints nothing)
        lines = [
            " ".join(x.split()) for x in body.splitlines() if x.strip() and not x.startswith(("Server:", "Address:\t"))
        ]
        out.append(DnsAnswer(qtype, name, server, tuple(sorted(set(addrs))), status, "; ".join(lines)))
    return out


# ---------------------------------------------------------------- Corefile: what answers a name before `kubernetes`


@dataclass(frozen=True)
class CorefileBlock:
    """A plugin block (or a server block for another zone) of a Corefile, with its 1-based line range."""

    plugin: str  # hosts | template | rewrite | server (a server block for a zone of its own)
    first: int
    last: int
    lines: tuple[str, ...]

    def quote(self) -> str:
        where = f"line {self.first}" if self.first == self.last else f"lines {self.first}-{self.last}"
        return f"{where}: " + " | ".join(x.strip() for x in self.lines)


def _blocks(corefile: str) -> list[tuple[tuple[str, ...], CorefileBlock]]:
    """(zones of its server block, block) for every plugin block and every server block."""
    out: list[tuple[tuple[str, ...], CorefileBlock]] = []
    lines = corefile.splitlines()
    zones: tuple[str, ...] = ()
    depth, server_start = 0, 0
    plugin_start, plugin = 0, ""
    for i, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].rstrip()
        words = line.split()
        if depth == 0 and line.endswith("{"):
            zones = tuple(_zone(w) for w in words[:-1])
            server_start = i
        elif depth == 1 and words:
            plugin, plugin_start = words[0], i
            if not line.endswith("{"):
                out.append((zones, CorefileBlock(plugin, i, i, (raw,))))
        depth += line.count("{") - line.count("}")
        if depth == 1 and plugin_start and line.strip() == "}" and plugin:
            out.append((zones, CorefileBlock(plugin, plugin_start, i, tuple(lines[plugin_start - 1 : i]))))
            plugin, plugin_start = "", 0
        if depth == 0 and server_start and line.strip().endswith("}"):
            out.append((zones, CorefileBlock("server", server_start, i, tuple(lines[server_start - 1 : i]))))
            server_start = 0
    return out


def _zone(word: str) -> str:
    z = re.sub(r"^[a-z]+://", "", word).split(":", 1)[0].rstrip(".")
    return "." if z in ("", ".") else z


def _in_zone(name: str, zone: str) -> bool:
    return zone == "." or name == zone or name.endswith("." + zone)


def corefile_overrides(corefile: str, name: str) -> list[CorefileBlock]:
    """The Corefile blocks that answer or redirect `name` (fully qualified) ahead of the kubernetes plugin:
    a `hosts` entry for it, a `template` whose zone and match cover it, a `rewrite` of it, or a server
    block for a zone of its own (a stub domain / forward) that does not serve it from the kubernetes plugin."""
    name = name.rstrip(".")
    out: list[CorefileBlock] = []
    blocks = _blocks(corefile)
    # the server block that serves the name: the most specific zone (CoreDNS picks the longest match)
    serving = max(
        (z for zs, _ in blocks for z in zs if _in_zone(name, z)), key=lambda z: 0 if z == "." else len(z), default="."
    )
    for zones, b in blocks:
        if serving not in zones:
            continue
        body = [x.split("#", 1)[0].split() for x in b.lines]
        if b.plugin == "hosts" and any(name in ws[1:] or f"{name}." in ws[1:] for ws in body if ws and is_ip(ws[0])):
            out.append(b)
        elif b.plugin == "template":
            head = body[0][3:] if len(body[0]) > 3 else []
            tzones = [_zone(z) for z in head if z != "{"] or list(zones)
            matches = [ws[1].strip('"') for ws in body if ws and ws[0] == "match" and len(ws) > 1]
            if any(_in_zone(name, z) for z in tzones) and (not matches or any(_search(m, name + ".") for m in matches)):
                out.append(b)
        elif _redirects(b.plugin, body, name, serving):
            out.append(b)
    return out


def _redirects(plugin: str, body: list[list[str]], name: str, serving: str) -> bool:
    """A rewrite of the name, or a server block of its own zone that does not run the kubernetes plugin."""
    if plugin == "rewrite":
        return _rewrites(body, name)
    return plugin == "server" and serving != "." and not any(ws and ws[0] == "kubernetes" for ws in body)


def _search(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _rewrites(body: list[list[str]], name: str) -> bool:
    """A `rewrite [continue|stop] name [exact|prefix|suffix|substring|regex] FROM TO` that takes `name`."""
    for ws in body:
        ws = [w for w in ws if w not in ("continue", "stop")]
        if len(ws) < 4 or ws[0] != "rewrite" or ws[1] != "name":
            continue
        kind, src = (ws[2], ws[3]) if ws[2] in ("exact", "prefix", "suffix", "substring", "regex") else ("exact", ws[2])
        src_name = src.rstrip(".")
        if (
            (kind == "exact" and src_name == name)
            or (kind == "prefix" and name.startswith(src))
            or (kind == "suffix" and (name + ".").endswith(src))
            or (kind == "substring" and src in name)
            or (kind == "regex" and _search(src, name + "."))
        ):
            return True
    return False
