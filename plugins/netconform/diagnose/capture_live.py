"""--capture-pcap on the cluster: retry the first failing TCP path under tcpdump on its nodes, read the pcaps.

What is captured, and where (docs/faults.md, "Packet capture"): only the failed path's own TCP flows
(capture_filter: our probe pods' addresses, the probe port), headers only (capture_filter.snap_length),
at three kinds of point on each node of the path: each probe pod's host-side interface
(capture_iface: the route where it names the pod's own interface, else the veth peer of the pod's
eth0), the overlay device (flannel.1 / flannel-v6.1, where the inner destination MAC shows), and
`-i any` for the underlay (the VXLAN datagrams carrying those flows, matched on their inner headers).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from kubernetes import client as k8s

from netconform.dialing.fanout import dial_from
from netconform.dialing.model import Source, Target
from netconform.dialing.path import PathInfo
from netconform.errors import NetconformError, error_text
from netconform.kube.connect import make_api_client
from netconform.kube.exec import run_in_pod
from netconform.nodes import NodeHosts
from netconform.workload.labels import HTTP_PORT, PROBE_CONTAINER, role_selector

from .capture import Analysis, analyse, verdict
from .capture_filter import Flow, any_filter, link_filter, snap_length
from .capture_iface import IfaceNotFound, find_host_side, valid_ifname
from .facts import ClusterFacts

__all__ = ["Captured", "capture_path"]

REDIAL_TIMEOUT_MS = 2000
REDIAL_COUNT = 3
IFLINK_COMMAND = ["/bin/sh", "-c", "read i < /sys/class/net/eth0/iflink && echo $i"]
POD_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
OVERLAY_DEVICE = {4: "flannel.1", 6: "flannel-v6.1"}


@dataclass
class Captured:
    """What `capture_path` produced: lines for the diagnosis section and the pcaps by capture name."""

    text: str
    pcaps: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeEnd:
    """One of our probe pods on the failed path, and its flow as its host-side interface sees it."""

    role: str  # "client" | "server"
    pod: str
    node: str
    flow: Flow


@dataclass(frozen=True)
class Point:
    """One tcpdump: on `node`, interface `iface`, reported and saved as `key`; `tag` names its files."""

    node: str
    key: str
    iface: str
    bpf: str
    snap: int
    tag: str
    role: str = ""  # the probe end whose host-side interface this is; "" for -i any and the overlay


def _tcpdump_cmd(seconds: int, point: Point) -> str:
    # setsid: tcpdump must outlive this exec; the pid file lets us stop exactly our own process.
    # -Z root: Debian's tcpdump otherwise switches to user `tcpdump`, which an agent image may lack
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 < seconds <= 3600:
        raise ValueError(f"capture seconds out of range: {seconds!r}")
    if not (point.iface == "any" or valid_ifname(point.iface)) or not 0 < point.snap <= 262144:
        raise ValueError(f"refusing to capture on {point.iface[:40]!r} with snap length {point.snap!r}")
    if not re.fullmatch(r"-[a-z0-9]{1,8}|", point.tag):
        raise ValueError(f"bad capture tag {point.tag!r}")
    f = f"/tmp/nc-cap{point.tag}"
    return (
        f"rm -f {f}.pcap; setsid timeout {seconds} tcpdump -Z root -i {shlex.quote(point.iface)} -U -n "
        f"-s {point.snap} -w {f}.pcap {shlex.quote(point.bpf)} >{f}.log 2>&1 & echo $! >{f}.pid; sleep 1; echo started"
    )


def _family_ip(pod: k8s.V1Pod, family: int) -> str | None:
    """The pod's address of `family` (dual-stack pods have one of each)."""
    status = pod.status
    ips = [p.ip for p in (status.pod_ips or []) if p and p.ip] if status else []
    ips += [status.pod_ip] if status and status.pod_ip else []
    for text in ips:
        try:
            if ipaddress.ip_address(text).version == family:
                return str(ipaddress.ip_address(text))
        except ValueError:
            continue
    return None


def _snat_sources(facts: ClusterFacts, nodes: list[str], family: int, *, bridge: bool) -> list[str]:
    """Where a client's source may be rewritten to on the way (a masquerade, seed 3; a NodePort's SNAT):
    the nodes' addresses and their pod CIDRs' first address (flannel.1's .0), with `bridge` cni0's .1."""
    out: list[str] = []
    for name in nodes:
        nf = facts.nodes.get(name)
        if nf is None:
            continue
        for text in (nf.internal_ip, nf.internal_ip_v6, nf.public_ip):
            try:
                if text and ipaddress.ip_address(text).version == family:
                    out.append(text)
            except ValueError:
                continue
        for cidr in nf.pod_cidrs:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                continue
            if net.version == family and net.num_addresses > 2:
                out += [str(net.network_address)] + ([str(net.network_address + 1)] if bridge else [])
    return out


def path_flows(
    path: PathInfo, facts: ClusterFacts, client_ip: str | None, server_ip: str | None
) -> tuple[Flow | None, Flow | None]:
    """The failed path's flows as the client's and the server's host-side interfaces see them.

    The client's, as it dialed: its address with the target's, the target port. The server's: its
    address and port (a pod target is the server itself; a Service or NodePort reaches it on the container
    port) with the client's address or one a masquerade or a NodePort's SNAT may have put in its place."""
    port = path.target_port
    if port is None:
        return None, None
    family = ipaddress.ip_address(path.target_ip).version
    client = Flow(client_ip, (path.target_ip,), port) if client_ip else None
    server = None
    if server_ip and path.dst_node:
        pod_target = server_ip == path.target_ip
        server_port = port if pod_target else HTTP_PORT
        # a pod target: only the client's node may masquerade it (its address, flannel.1's .0); a Service or
        # NodePort: either node, the bridge's .1 too (hairpin). Never the server node's .1 for a pod target:
        # the kubelet's probes of our server come from there (seen on the lab, 2026-12-03)
        snat = _snat_sources(facts, [path.src_node], family, bridge=False)
        if not pod_target:
            snat += _snat_sources(facts, sorted({path.src_node, path.dst_node}), family, bridge=True)
        peers = tuple(dict.fromkeys([p for p in [client_ip] if p] + snat))
        server = Flow(server_ip, peers, server_port) if peers else None
    return client, server


def probe_ends(configuration: k8s.Configuration, namespace: str, path: PathInfo, facts: ClusterFacts) -> list[ProbeEnd]:
    """The failed path's client pod (the one that dialed) and the server pod on its destination node."""
    core = k8s.CoreV1Api(make_api_client(configuration))
    family = ipaddress.ip_address(path.target_ip).version
    clients = _pods(core, namespace, "client", path.src_node)
    client = next((p for p in clients if _name(p) == path.src_pod), clients[0] if clients else None)
    servers = _pods(core, namespace, "server", path.dst_node) if path.dst_node else []
    server = servers[0] if servers else None
    client_ip = _family_ip(client, family) if client else None
    server_ip = _family_ip(server, family) if server else None
    client_flow, server_flow = path_flows(path, facts, client_ip, server_ip)
    ends = []
    if client is not None and client_flow is not None:
        ends.append(ProbeEnd("client", _name(client), path.src_node, client_flow))
    if server is not None and server_flow is not None and path.dst_node:
        ends.append(ProbeEnd("server", _name(server), path.dst_node, server_flow))
    return [e for e in ends if POD_NAME.fullmatch(e.pod)]


def _name(pod: k8s.V1Pod) -> str:
    return str(pod.metadata.name) if pod.metadata else ""


def _pods(core: k8s.CoreV1Api, namespace: str, role: str, node: str) -> list[k8s.V1Pod]:
    return list(
        core.list_namespaced_pod(
            namespace, label_selector=role_selector(role), field_selector=f"spec.nodeName={node}", _request_timeout=10
        ).items
    )


def _node_stdout(hosts: NodeHosts, node: str, command: str) -> str:
    return hosts.run(node, command, 15).stdout


def _pod_iflink(configuration: k8s.Configuration, namespace: str, pod: str) -> str:
    """/sys/class/net/eth0/iflink in our probe pod: the ifindex of its veth's host side."""
    return run_in_pod(configuration, namespace, pod, IFLINK_COMMAND, container=PROBE_CONTAINER, timeout_s=10).stdout


def _points(
    hosts: NodeHosts, configuration: k8s.Configuration, namespace: str, ends: list[ProbeEnd], facts: ClusterFacts
) -> tuple[list[Point], list[str]]:
    """Every tcpdump to start, and a line per probe end saying where its host side is (or why not found)."""
    flows = [e.flow for e in ends]
    family = flows[0].family
    nodes = sorted({e.node for e in ends})
    points = [Point(n, n, "any", any_filter(flows), snap_length(family, vxlan=True), "") for n in nodes]
    overlay = OVERLAY_DEVICE[family]
    for n in nodes:
        nf = facts.nodes.get(n)
        if nf is not None and (nf.vtep_mac if family == 4 else nf.vtep_mac_v6):  # only a VXLAN node has one
            points.append(
                Point(n, f"{n}-{overlay}", overlay, link_filter(flows), snap_length(family, vxlan=False), "-fl")
            )
    notes = []
    for i, end in enumerate(ends):
        where = f"{end.role} pod {end.pod} ({end.flow.pod})"
        try:
            side = find_host_side(
                end.flow.pod,
                partial(_node_stdout, hosts, end.node),
                partial(_pod_iflink, configuration, namespace, end.pod),
            )
        except (IfaceNotFound, NetconformError) as exc:
            notes.append(f"  {end.node}: {where}: its host-side interface not found: {error_text(exc)}")
            continue
        key = f"{end.node}-{side.name}"
        notes.append(f"  {key}: taken on {side.name}, the host side of {where}: {side.how}")
        flow = link_filter([end.flow])
        points.append(Point(end.node, key, side.name, flow, snap_length(family, vxlan=False), f"-pod{i}", end.role))
    return points, notes


def capture_path(
    hosts: NodeHosts,
    facts: ClusterFacts,
    configuration: k8s.Configuration,
    namespace: str,
    paths: list[PathInfo],
    seconds: int,
    save: Callable[[str, bytes], str | None],
) -> Captured:
    """Retry the first failing TCP path under tcpdump on its nodes; `save(name, data)` keeps a pcap."""
    path = next((p for p in paths if p.target_port and p.check != "dns"), None)
    if path is None or not path.src_node:
        return Captured("capture: no TCP path to retry\n")
    try:
        ends = probe_ends(configuration, namespace, path, facts)
        if not ends:
            return Captured(f"capture: no probe pod of the path {path.src_node} -> {path.target} found\n")
        points, notes = _points(hosts, configuration, namespace, ends, facts)
        with ThreadPoolExecutor(len(points)) as pool:
            list(pool.map(lambda p: hosts.run(p.node, _tcpdump_cmd(seconds, p), 20), points))
        retry_note = _redial(configuration, namespace, path)
        time.sleep(1)
        pcaps: dict[str, bytes] = {}
        logs: dict[str, str] = {}  # tcpdump's own words: why a capture came back empty
        for p in points:
            f = f"/tmp/nc-cap{p.tag}"
            hosts.run(p.node, f"kill -INT $(cat {f}.pid) 2>/dev/null; sleep 1; true", 15)
            res = hosts.run(p.node, f"base64 {f}.pcap && rm -f {f}.pcap {f}.pid", 30)
            pcaps[p.key] = base64.b64decode("".join(res.stdout.split()) or b"")
            logs[p.key] = hosts.run(p.node, f"tail -3 {f}.log 2>/dev/null; true", 15).stdout.strip()
    except Exception as exc:  # boundary: capture is best effort; say why, never lose the diagnosis made
        return Captured(f"capture failed: {error_text(exc)}\n")
    return Captured(_report(facts, path, ends, points, notes, pcaps, logs, seconds, retry_note, save), pcaps)


def _report(
    facts: ClusterFacts,
    path: PathInfo,
    ends: list[ProbeEnd],
    points: list[Point],
    notes: list[str],
    pcaps: dict[str, bytes],
    logs: dict[str, str],
    seconds: int,
    retry_note: str,
    save: Callable[[str, bytes], str | None],
) -> str:
    expected = {nf.public_ip or nf.internal_ip or "": nf.vtep_mac for nf in facts.nodes.values() if nf.vtep_mac}
    overlay = {c: nf.vtep_mac for nf in facts.nodes.values() if nf.vtep_mac for c in nf.pod_cidrs}
    flows = "; ".join(f"{e.role} {e.flow.pod} with {', '.join(e.flow.peers)} on port {e.flow.port}" for e in ends)
    snaps = sorted({p.snap for p in points})
    lines = [
        f"capture ({seconds}s, retry: {retry_note}): only the probe's TCP flows ({flows}), "
        f"headers only ({', '.join(map(str, snaps))} bytes a packet):"
    ]
    lines += notes
    by_role: dict[str, tuple[str, Analysis]] = {}
    for p in points:
        data = pcaps.get(p.key, b"")
        if not data:
            lines.append(f"  {p.key}: empty capture")
            lines += [f"  {p.key}: tcpdump: {x}" for x in logs.get(p.key, "").splitlines()]
            continue
        saved = save(p.key, data)
        if saved:
            lines.append(f"  {p.key}: pcap {saved}")
        an = analyse(data, expected, None, overlay)
        if p.role:
            by_role[p.role] = (p.iface, an)
        lines += [f"  {p.key}: {line}" for line in an.lines()]
        if not an.packets and logs.get(p.key):
            lines += [f"  {p.key}: tcpdump: {x}" for x in logs[p.key].splitlines()]
    lines.append(f"  verdict: {verdict(by_role.get('client'), by_role.get('server'))}")
    return "\n".join(lines) + "\n"


def _redial(configuration: k8s.Configuration, namespace: str, path: PathInfo) -> str:
    """Dial the failed target again from the client pod on the source node (one `probe dial`)."""
    core = k8s.CoreV1Api(make_api_client(configuration))
    pods = core.list_namespaced_pod(
        namespace,
        label_selector=role_selector("client"),
        field_selector=f"spec.nodeName={path.src_node}",
        _request_timeout=10,
    ).items
    if not pods or not path.src_node or path.target_port is None:
        return f"no client pod on {path.src_node}"
    pod = next((p for p in pods if p.metadata and p.metadata.name == path.src_pod), pods[0])
    name = pod.metadata.name if pod.metadata else None
    ip = pod.status.pod_ip if pod.status else None
    source = Source(str(name), str(ip or ""), path.src_node)
    target = Target("retry", "tcp", path.target_ip, path.target_port, path.check, count=REDIAL_COUNT)
    outcome = dial_from(configuration, namespace, source, [target], REDIAL_TIMEOUT_MS)
    if outcome.error is not None or not outcome.results:
        return f"probe said: {(outcome.error or 'no result')[:120]}"
    attempts = outcome.results[0].attempts
    return f"{sum(1 for a in attempts if a.ok)}/{len(attempts)} ok"
