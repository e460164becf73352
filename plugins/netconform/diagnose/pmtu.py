"""The underlay path MTU between nodes, measured: what the network between two nodes carries, whatever
both ends' uplinks say. From each node, DF pings to each peer node's address (section `pmtu`): a small
one (is the peer reachable at all), one of the size the overlay needs (the VXLAN device's MTU plus its
encapsulation: a full-size pod packet, encapsulated), and a few sizes below it, all at once (one second
per node). A size that does not pass while a smaller does is an MTU on the way; an ICMP
fragmentation-needed that came back (or the kernel's cached path MTU) names the hop's MTU, silence
means a black hole (an L2 segment, or a router whose ICMP is filtered)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MARK = "#nc-pmtu"
RC_MARK = "#nc-pmtu-rc"
DF_OFF = "#nc-pmtu-df off"  # the node's ping could not set DF (busybox)
MAX_PEERS = 16  # a bound on the pings per node; beyond it the first 16 peers by address are measured
SMALL = 84  # bytes of a default ping (56 of payload): the peer answers at all
# below the size the overlay needs, probed at the same time: the largest that passes bounds the path MTU
STEPS = (20, 50, 72, 100, 150, 200, 300, 500)
# (VXLAN device, encapsulation over the underlay, IP + ICMP header bytes) per underlay family
OVERLAY = {4: ("flannel.1", 50, 28), 6: ("flannel-v6.1", 70, 48)}


def script(peers: Iterable[str]) -> str | None:
    """The section's shell body: every probe in the background, bounded by ping's own 1 s wait."""
    ips = sorted({str(ipaddress.ip_address(p)) for p in peers if _is_ip(p)})[:MAX_PEERS]
    if not ips:
        return None
    # busybox's ping cannot set DF (no -M): it sends with the kernel's default (DF on, fragmenting only
    # locally), which still loses a size a hop drops silently; the output says which was used
    body = (
        'd=/tmp/nc-pmtu.$$; mkdir -p "$d"; M="-M do"; '
        "ping -M do -c 1 -W 1 127.0.0.1 2>&1 | grep -qiE 'invalid option|unrecognized option' && M=''; "
    )
    for family, (dev, overhead, header) in OVERLAY.items():
        mine = [p for p in ips if ipaddress.ip_address(p).version == family]
        if not mine:
            continue
        # no such device (host-gw, single-stack): nothing the overlay needs to measure
        body += f"m=$(cat /sys/class/net/{dev}/mtu 2>/dev/null) && {{ n=$((m+{overhead})); "
        for p in mine:
            sizes = " ".join(["$n", str(SMALL)] + [f"$((n-{s}))" for s in STEPS])
            body += (
                f'for s in {sizes}; do {{ echo "{MARK} {p} $n $s"; '
                f'ping $M -c 1 -W 1 -s $((s-{header})) {p} 2>&1; echo "{RC_MARK} $?"; }} '
                f'>"$d/{p}-$s" 2>&1 & done; '
                f'{{ echo "{MARK} {p} $n route"; ip route get {p} 2>&1; }} >"$d/{p}-route" 2>&1; '
            )
        body += "}; "
    return body + f'wait; [ -n "$M" ] || echo "{DF_OFF}"; cat "$d"/* 2>/dev/null; rm -rf "$d"'


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass
class PathProbe:
    """What the DF pings from one node to one peer found."""

    peer: str
    need: int  # the underlay packet a full-size overlay packet makes (device MTU + encapsulation)
    passed: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    icmp_mtu: int | None = None  # the MTU an ICMP fragmentation-needed / packet-too-big from a hop named
    local_mtu: int | None = None  # the MTU the sending kernel refused the size with (`message too long, mtu=N`)
    route: str = ""  # `ip route get PEER`: the route and any cached mtu
    route_mtu: int | None = None  # its `cache [expires Ns] mtu [lock] N`
    learned: bool = False  # that mtu expires: a path MTU learned from an ICMP error, not a configured one
    errors: list[str] = field(default_factory=list)  # the ping lines that say why a size did not pass
    df: bool = True  # sent with DF forced (`ping -M do`); False: the kernel's default (busybox ping)

    @property
    def reachable(self) -> bool:
        return SMALL in self.passed

    @property
    def short(self) -> bool:
        """The peer answers small DF pings, not the size the overlay needs: an MTU on the way."""
        return self.reachable and self.need in self.lost

    @property
    def largest(self) -> int | None:
        below = [s for s in self.passed if s < self.need]
        return max(below) if below else None

    @property
    def local(self) -> bool:
        """The sending node refused the size itself (its own uplink or route MTU): not the network's."""
        return any("local error" in e or "message too long" in e for e in self.errors)


_MTU = re.compile(r"\bmtu\s*=?\s*(\d+)", re.I)


def parse(text: str) -> dict[str, PathProbe]:
    """The section's output -> peer address -> its probe."""
    probes: dict[str, PathProbe] = {}
    df = not re.search(rf"^{DF_OFF}$", text, re.M)
    for chunk in re.split(rf"^(?={MARK} )", text, flags=re.M):
        head, _, rest = chunk.partition("\n")
        words = head.split()
        if len(words) != 4 or words[0] != MARK or not _is_ip(words[1]) or not words[2].isdigit():
            continue
        probe = probes.setdefault(words[1], PathProbe(words[1], int(words[2]), df=df))
        if words[3] == "route":
            probe.route = " ".join(rest.split())[:200]
            cached = re.search(r"\bcache\b.*?\bmtu (?:lock )?(\d+)", probe.route)
            if cached:
                probe.route_mtu, probe.learned = int(cached.group(1)), "expires" in probe.route
            continue
        if not words[3].isdigit():
            continue
        size = int(words[3])
        rc = re.search(rf"^{RC_MARK} (\d+)", rest, re.M)
        (probe.passed if rc and rc.group(1) == "0" else probe.lost).add(size)
        for line in rest.splitlines():
            low = line.lower()
            if "frag needed" in low or "message too long" in low or "packet too big" in low:
                probe.errors.append(line.strip()[:160])
                m = _MTU.search(line)
                if m and "message too long" in low:
                    probe.local_mtu = int(m.group(1))
                elif m:
                    probe.icmp_mtu = int(m.group(1))
    return probes
