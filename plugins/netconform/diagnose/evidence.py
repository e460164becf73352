"""Node and cluster evidence: what we read, and its parsed form.

One shell script per node gathers every section in a single exec (one round
trip per node, not thirty); each command inside is bounded by `timeout`.
Parsing is lazy and pure, so unit tests feed recorded output straight in. What the API says about
the cluster is in facts.py.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import iptables, nftables, parsers, pmtu
from .dialseq import SourcePattern
from .facts import ClusterFacts, NodeFacts

CMD_TIMEOUT_S = 10

# (section name, shell command). $FS is the node's root as the agent mounts it (/host) or "".
SECTIONS: tuple[tuple[str, str], ...] = (
    ("kernel", "uname -r"),
    ("link", "ip -d link show"),
    ("addr", "ip -o addr show"),
    ("neigh_flannel", "ip neigh show dev flannel.1"),
    ("fdb_flannel", "bridge fdb show dev flannel.1"),
    ("route", "ip route show"),
    # IPv6 (dual-stack): routes and every neighbour of both families (flannel-v6.1, host-gw peers)
    ("route6", "ip -6 route show"),
    ("neigh", "ip neigh show"),
    # both backends are live in the kernel at once; legacy only when its tables exist
    ("iptables", "if command -v iptables-nft-save >/dev/null; then iptables-nft-save -c; else iptables-save -c; fi"),
    (
        "iptables_legacy",
        "[ -s /proc/net/ip_tables_names ] || { echo '# no legacy tables'; exit 0; }; "
        "command -v iptables-legacy-save >/dev/null || { echo '# no iptables-legacy-save'; exit 0; }; "
        "iptables-legacy-save -c",
    ),
    (
        "sysctl",
        "sysctl net.ipv4.ip_forward net.ipv4.tcp_timestamps net.ipv4.tcp_tw_recycle "
        "net.bridge.bridge-nf-call-iptables net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter "
        "net.ipv6.conf.all.forwarding net.bridge.bridge-nf-call-ip6tables",
    ),
    ("rp_filter", "grep -H . /proc/sys/net/ipv4/conf/*/rp_filter"),
    ("conntrack", "conntrack -S"),
    ("nstat", "nstat -as"),
    ("netstat", "netstat -s"),
    ("subnet_env", "cat $FS/run/flannel/subnet.env"),
    ("flannel_docker", "cat $FS/run/flannel/docker"),
    ("hairpin", "grep -H . /sys/class/net/*/brport/hairpin_mode"),
    ("bridge_link", "bridge -d link show"),
    ("cni_conf", "cat $FS/etc/cni/net.d/*.conf*"),
    # kube-proxy's nftables mode (tables `ip kube-proxy`, `ip6 kube-proxy`) and any other nft table
    ("nft", "nft -j list ruleset"),
)

SECTION_MARK = "@@nc-section"
# tools busybox also provides as applets (which busybox sh would run instead of the real ones)
REAL_TOOLS = ("ip", "sysctl", "netstat", "tc", "ping")


def gather_script(
    timeout_s: int = CMD_TIMEOUT_S,
    pod_ips: Iterable[str] = (),
    dns_queries: Iterable[parsers.DnsQuery] = (),
    peer_ips: Iterable[str] = (),
) -> str:
    """The POSIX sh script run on a node. Output: `@@nc-section NAME rc=N` then the text.

    pod_ips: pods the API places on this node; `ip route get` names each one's host-side interface
    whatever the CNI calls it (cni0 port, cali*, lxc*), section `route_get`.
    dns_queries: (name, CoreDNS pod IP, a|aaaa) asked of that pod directly, bypassing the Service
    (`nslookup`, section `dns`): what each CoreDNS pod answers.
    peer_ips: the other nodes' addresses, DF-pinged at the size the overlay needs (section `pmtu`, pmtu.py)."""
    lines = [
        "FS=${NC_HOSTFS-/host}; [ -d \"$FS/run\" ] || FS=''",
        f"T=''; command -v timeout >/dev/null 2>&1 && T='timeout {timeout_s}'",
        "export FS",
        # busybox sh prefers its own applets over PATH (its `ip` has no -d, its `netstat` no -s):
        # every inner shell gets functions pointing at the real binaries when the image has them
        "P=''; for t in " + " ".join(REAL_TOOLS) + "; do for d in /usr/sbin /sbin /usr/bin /bin /usr/local/sbin; do "
        'if [ -x "$d/$t" ] && ! [ "$d/$t" -ef /bin/busybox ]; then P="$P $t() { $d/$t \\"\\$@\\"; };"; break; fi; '
        "done; done",
        # a line of output that starts like a marker (a CNI config file can hold anything) is indented:
        # it cannot open a section of its own and forge the evidence after it
        'sec() { n=$1; shift; o=$($T sh -c "$P $*" 2>&1); r=$?; '
        f'printf \'{SECTION_MARK} %s rc=%d\\n\' "$n" "$r"; '
        f"printf '%s\\n' \"$o\" | sed 's/^{SECTION_MARK}/ &/'; }}",
    ]
    for name, cmd in SECTIONS:
        lines.append(f"sec {name} {_sh_quote(cmd)}")
    ips = sorted({str(ipaddress.ip_address(ip)) for ip in pod_ips if parsers.is_ip(ip)})
    if ips:
        loop = "for a in " + " ".join(ips) + '; do ip route get $a || echo "unreachable $a"; done'
        lines.append(f"sec route_get {_sh_quote(loop)}")
    asks = [
        (n, str(ipaddress.ip_address(ip)), t)
        for n, ip, t in dns_queries
        if parsers.is_ip(ip) and t in ("a", "aaaa") and re.fullmatch(r"[A-Za-z0-9.-]+", n)
    ]
    if asks:
        # all at once, each bounded (2 s): CoreDNS pods behind a broken path cost 2 s, not 2 s per query
        body = 'd=/tmp/nc-dns.$$; mkdir -p "$d"; ' + "".join(
            f"{{ echo '{parsers.NSLOOKUP_MARK} {t} {n} {ip}'; timeout 2 nslookup -type={t} {n} {ip}; }} "
            f'>"$d/{i:03d}" 2>&1 & '
            for i, (n, ip, t) in enumerate(asks)
        )
        body += 'wait; cat "$d"/*; rm -rf "$d"'
        lines.append(f"sec dns {_sh_quote(body)}")
    probes = pmtu.script(peer_ips)
    if probes:
        lines.append(f"sec pmtu {_sh_quote(probes)}")
    return "\n".join(lines) + "\n"


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


@dataclass(frozen=True)
class Section:
    name: str
    rc: int
    text: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def problem(self) -> str | None:
        """Why this section could not be read, in words; None when it was read."""
        low = self.text.lower()
        if self.rc == 0:
            return None
        if self.rc == 127 or "not found" in low:
            return f"command not found ({self.text.strip().splitlines()[-1] if self.text.strip() else 'rc 127'})"
        if self.rc in (124, 137):
            return f"timed out after {CMD_TIMEOUT_S}s"
        if "permission denied" in low or "operation not permitted" in low:
            return "permission denied: " + self.text.strip().splitlines()[0]
        return f"rc {self.rc}: " + (self.text.strip().splitlines()[0] if self.text.strip() else "no output")


def split_sections(output: str) -> dict[str, Section]:
    out: dict[str, Section] = {}
    name: str | None = None
    rc = 0
    buf: list[str] = []
    for line in output.splitlines():
        m = re.match(rf"^{SECTION_MARK} (\S+) rc=(\d+)$", line)
        if m:
            if name is not None:
                out[name] = Section(name, rc, "\n".join(buf))
            name, rc, buf = m.group(1), int(m.group(2)), []
        elif name is not None:
            buf.append(line)
    if name is not None:
        out[name] = Section(name, rc, "\n".join(buf))
    return out


# ---------------------------------------------------------------- node evidence


@dataclass
class NodeEvidence:
    """Everything read from one node. `error` set = the node could not be inspected at all."""

    node: str
    sections: dict[str, Section] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def from_output(cls, node: str, output: str) -> NodeEvidence:
        return cls(node, split_sections(output))

    def text(self, name: str) -> str:
        s = self.sections.get(name)
        return s.text if s is not None and s.ok else ""

    def has(self, name: str) -> bool:
        s = self.sections.get(name)
        return s is not None and s.ok

    def problem(self, name: str) -> str | None:
        if self.error:
            return self.error
        s = self.sections.get(name)
        if s is None:
            return "not gathered"
        if name == "sysctl" and self.sysctl:
            return None  # partial output is expected: absent keys are facts, not failures
        return s.problem()

    @functools.cached_property
    def links(self) -> dict[str, parsers.Link]:
        return parsers.parse_ip_link(self.text("link"))

    @functools.cached_property
    def addrs(self) -> dict[str, list[str]]:
        return parsers.parse_addrs(self.text("addr"))

    @functools.cached_property
    def neigh(self) -> list[parsers.Neigh]:
        return parsers.parse_neigh(self.text("neigh_flannel"), dev="flannel.1")

    @functools.cached_property
    def fdb(self) -> list[parsers.FdbEntry]:
        return parsers.parse_fdb(self.text("fdb_flannel"), dev="flannel.1")

    @functools.cached_property
    def routes(self) -> list[parsers.Route]:
        return parsers.parse_routes(self.text("route"))

    @functools.cached_property
    def routes6(self) -> list[parsers.Route]:
        return parsers.parse_routes(self.text("route6"))

    @functools.cached_property
    def neigh_all(self) -> list[parsers.Neigh]:
        """Every neighbour of both families (`ip neigh show`)."""
        return parsers.parse_neigh(self.text("neigh"))

    @functools.cached_property
    def nft(self) -> nftables.Ruleset:
        return nftables.parse_ruleset(self.text("nft"))

    @functools.cached_property
    def path_probes(self) -> dict[str, pmtu.PathProbe]:
        """Peer node address -> what DF pings to it at the overlay's sizes found (section `pmtu`)."""
        return pmtu.parse(self.text("pmtu"))

    @functools.cached_property
    def dns_answers(self) -> list[parsers.DnsAnswer]:
        """What each CoreDNS pod answered when asked directly from this node (section `dns`)."""
        return parsers.parse_nslookups(self.text("dns"))

    @functools.cached_property
    def route_get(self) -> dict[str, parsers.Route]:
        """`ip route get <podIP>` for the pods the API places here: pod IP -> the route (dev = host side)."""
        return {r.dst.split("/")[0]: r for r in parsers.parse_routes(self.text("route_get"))}

    @functools.cached_property
    def tables(self) -> iptables.Tables:
        parts = [iptables.parse_iptables_save(self.text("iptables"), "nft")]
        if "*" in self.text("iptables_legacy"):
            parts.append(iptables.parse_iptables_save(self.text("iptables_legacy"), "legacy"))
        return iptables.merge_tables(parts)

    @functools.cached_property
    def sysctl(self) -> dict[str, str]:
        # sysctl exits non-zero when one key is absent (tcp_tw_recycle on >= 4.12) but prints the rest
        s = self.sections.get("sysctl")
        return parsers.parse_sysctl(s.text) if s is not None else {}

    def sysctl_line(self, key: str) -> str | None:
        s = self.sections.get("sysctl")
        return parsers.sysctl_line(s.text, key) if s else None

    @functools.cached_property
    def rp_filter(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.text("rp_filter").splitlines():
            m = re.match(r"^/proc/sys/net/ipv4/conf/([^/]+)/rp_filter:(\d+)$", line.strip())
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    @functools.cached_property
    def conntrack(self) -> dict[str, int]:
        return parsers.parse_conntrack_stats(self.text("conntrack"))

    @functools.cached_property
    def nstat(self) -> dict[str, int]:
        return parsers.parse_nstat(self.text("nstat"))

    @functools.cached_property
    def subnet_env(self) -> dict[str, str]:
        return parsers.parse_env_file(self.text("subnet_env"))

    @functools.cached_property
    def flannel_docker(self) -> dict[str, str]:
        return parsers.parse_env_file(self.text("flannel_docker"))

    @functools.cached_property
    def cni_plugin_types(self) -> list[str]:
        """The plugin binaries the node's CNI config calls (flannel, its delegate bridge, host-local ...)."""
        return parsers.parse_cni_plugin_types(self.text("cni_conf"))

    @functools.cached_property
    def hairpin(self) -> dict[str, int]:
        return parsers.parse_hairpin(self.sections["hairpin"].text) if "hairpin" in self.sections else {}

    def as_text(self) -> str:
        """Every section as read (`### name (rc=N)` then the output), or why the node could not be read."""
        if self.error:
            return f"could not inspect {self.node}: {self.error}\n"
        return "".join(f"### {name} (rc={s.rc})\n{s.text.rstrip()}\n\n" for name, s in self.sections.items())

    def line_of(self, section: str, predicate: Callable[[str], bool]) -> str | None:
        for line in self.text(section).splitlines():
            if predicate(line):
                return line.strip()
        return None


@dataclass
class ClusterEvidence:
    facts: ClusterFacts
    nodes: dict[str, NodeEvidence] = field(default_factory=dict)
    # what the failed tests' dial results show per (source, address): diagnose.dialseq; none for --diagnose-only
    patterns: list[SourcePattern] = field(default_factory=list)
    # --diagnose-only: no connection was made, so no failure of this run can be explained (only risks)
    health_only: bool = False

    def patterns_through(self, node: str) -> list[SourcePattern]:
        """The patterns of dials from `node`'s pod or to one of its addresses (its NodePorts)."""
        return [p for p in self.patterns if p.through(node)]

    def peers(self, node: str) -> list[NodeFacts]:
        return [n for n in self.facts.nodes.values() if n.name != node]
