"""Faults injected for real into the lab's nodes, each one an entry of docs/faults.md (seeds 1-3 are its #1-#3).

Each `Fault` declares what the diagnosis must conclude (its cause id), the datapaths it works on and how it
is injected; tests/lab/test_faults.py reads its expectations from here. A lab fault is named for what it
breaks, its cause for what the diagnosis concludes: the `cause` field is the one mapping between the two
(docs/faults.md, "Names"). Every injection records its typed undo steps (undo.py) in faults.json, so
`ci/lab fault clear` restores the node exactly, whatever flanneld or kube-proxy did meanwhile."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import config, control, faults_corefile, faults_dual, faults_mtu, proc
from .cluster import bin_dir, node_by_name, run_in_node
from .config import Node, Variant
from .proc import LabError
from .undo import (
    Command,
    Restart,
    ScaleDeployment,
    StopProcess,
    SysctlRestore,
    UndoStep,
    from_json,
    from_legacy,
    to_json,
)

STALE_MAC = "ee:ee:ee:00:00:01"  # a MAC no lab interface has: what a recreated flannel.1 leaves behind


@dataclass(frozen=True)
class Datapaths:
    """The lab shapes a fault works on (`ci/lab up --flannel-backend/--proxy-mode/--ip-family`)."""

    backends: tuple[str, ...] = config.FLANNEL_BACKENDS
    proxy_modes: tuple[str, ...] = config.PROXY_MODES
    families: tuple[str, ...] = config.IP_FAMILIES
    cnis: tuple[str, ...] = ("flannel",)  # a fault made and diagnosed on Cilium's datapath too says so

    def refusal(self, var: Variant) -> str | None:
        """Why the fault does not apply to this lab shape, or None when it does."""
        if var.cni not in self.cnis:
            return "it is made and diagnosed on flannel's datapath; this lab runs Cilium"
        shape = [("kube-proxy mode", var.proxy_mode, self.proxy_modes), ("IP family", var.ip_family, self.families)]
        if not var.cilium:  # the backend is flannel's
            shape.insert(0, ("flannel backend", var.flannel_backend, self.backends))
        for what, value, allowed in shape:
            if value not in allowed:
                return f"it works on {what} {' or '.join(allowed)}; this lab runs {value}"
        return None

    def describe(self) -> str:
        """The dimensions it is restricted in ("flannel vxlan"), or "every datapath" the lab has."""
        narrowed = [
            f"{what} {'/'.join(chosen)}"
            for what, chosen, every in (
                ("flannel", self.backends, config.FLANNEL_BACKENDS),
                ("kube-proxy", self.proxy_modes, config.PROXY_MODES),
                ("family", self.families, config.IP_FAMILIES),
            )
            if set(chosen) != set(every)
        ]
        flannel = ", ".join(narrowed) or "every datapath"
        return f"{flannel}; Cilium" if "cilium" in self.cnis else flannel


ANY = Datapaths()
VXLAN = Datapaths(backends=("vxlan",))  # needs flannel's VXLAN device flannel.1, which host-gw does not have
# a VXLAN tunnel between nodes, flannel's (flannel.1) or Cilium's (cilium_vxlan): the same UDP port 8472
VXLAN_TUNNEL = Datapaths(backends=("vxlan",), cnis=("flannel", "cilium"))


@dataclass(frozen=True)
class Fault:
    name: str
    cause: str  # the cause id the diagnosis must rank first: a rule's CAUSE (docs/faults.md "cause")
    incident: str  # its docs/faults.md entry and what it breaks
    inject: Callable[[Node], list[UndoStep]]  # breaks the node for real; returns the steps that undo it
    works_on: Datapaths = ANY
    cluster_wide: bool = False  # --node is ignored and the diagnosis names no node
    suite_passes: str = ""  # why the suite stays green under it: then only --diagnose-only finds it


def _peers(node: Node) -> list[tuple[str, str, str]]:
    """(subnet .0 address, VtepMAC, public ip) of every other node, from flannel's node annotations."""
    found = []
    nodes = json.loads(control.kubectl(bin_dir(), "get", "nodes", "-o", "json"))["items"]
    for item in nodes:
        if item["metadata"]["name"] == node.name:
            continue
        ann = item["metadata"].get("annotations", {})
        vtep = json.loads(ann.get("flannel.alpha.coreos.com/backend-data", "{}")).get("VtepMAC")
        cidr = item["spec"].get("podCIDR")
        if vtep and cidr:
            found.append((cidr.split("/")[0], vtep, ann.get("flannel.alpha.coreos.com/public-ip", "")))
    if not found:
        raise LabError(f"{node.name} has no flannel peers yet (no backend-data annotations)")
    return found


def _peer_routes(node: Node) -> list[tuple[str, str]]:
    """(podCIDR, node IP) of every other node: where host-gw routes each peer's pods."""
    found = []
    for item in json.loads(control.kubectl(bin_dir(), "get", "nodes", "-o", "json"))["items"]:
        addresses = {a["type"]: a["address"] for a in item["status"].get("addresses", []) if ":" not in a["address"]}
        if item["metadata"]["name"] != node.name and item["spec"].get("podCIDR") and "InternalIP" in addresses:
            found.append((item["spec"]["podCIDR"], addresses["InternalIP"]))
    if not found:
        raise LabError(f"{node.name} has no peers with a podCIDR yet")
    return found


def _pod_cidr(node: Node) -> str:
    return control.kubectl(bin_dir(), "get", "node", node.name, "-o", "jsonpath={.spec.podCIDR}").strip()


def _sh(node: Node, *argv: str) -> str:
    return run_in_node(node, list(argv))


def stale_arp(node: Node, with_fdb: bool = False) -> list[UndoStep]:
    undo: list[UndoStep] = []
    for subnet0, vtep, public_ip in _peers(node):
        _sh(node, "ip", "neigh", "replace", subnet0, "lladdr", STALE_MAC, "dev", "flannel.1", "nud", "permanent")
        undo.append(
            Command(("ip", "neigh", "replace", subnet0, "lladdr", vtep, "dev", "flannel.1", "nud", "permanent"))
        )
        if with_fdb:
            # The stale FDB entry sends the frames on to the peer, which drops them silently: no counter moves.
            _sh(node, "bridge", "fdb", "replace", STALE_MAC, "dev", "flannel.1", "dst", public_ip, "self", "permanent")
    if with_fdb:
        undo.append(Command(("bridge", "fdb", "del", STALE_MAC, "dev", "flannel.1", "self")))
    return undo


def ip_masq(node: Node) -> list[UndoStep]:
    rule = ("-s", _pod_cidr(node), "!", "-o", "cni0", "-j", "MASQUERADE")
    _sh(node, "iptables", "-t", "nat", "-A", "POSTROUTING", *rule)
    return [Command(("iptables", "-t", "nat", "-D", "POSTROUTING", *rule))]


def missing_route(node: Node) -> list[UndoStep]:
    undo: list[UndoStep] = []
    if config.variant().flannel_backend == "host-gw":
        # flanneld's host-gw route check re-adds a deleted route within seconds, so the fault would heal
        # before anyone looked: the node's flanneld is stopped first (a crashed agent, the field's cause).
        undo = [Restart("flanneld")]
        proc.stop(f"{node.name}-flanneld")
        for cidr, peer_ip in _peer_routes(node):
            _sh(node, "ip", "route", "del", cidr, "via", peer_ip, "dev", "eth0")
            undo.append(Command(("ip", "route", "replace", cidr, "via", peer_ip, "dev", "eth0")))
        return undo
    for subnet0, _vtep, _ip in _peers(node):
        cidr = subnet0 + "/24"
        _sh(node, "ip", "route", "del", cidr, "dev", "flannel.1")
        undo.append(Command(("ip", "route", "replace", cidr, "via", subnet0, "dev", "flannel.1", "onlink")))
    return undo


def _iptables_insert(node: Node, table: str, chain: str, *rule: str) -> list[UndoStep]:
    _sh(node, "iptables", "-t", table, "-I", chain, "1", *rule)
    return [Command(("iptables", "-t", table, "-D", chain, *rule))]


def _sysctl(node: Node, key: str, value: str) -> list[UndoStep]:
    old = _sh(node, "sysctl", "-n", key).strip()
    _sh(node, "sysctl", "-qw", f"{key}={value}")
    return [SysctlRestore(key, old)]


def forward_drop(node: Node) -> list[UndoStep]:
    # dockerd sets the FORWARD policy to DROP; flanneld re-adds its ACCEPT rules for the pod network every
    # few seconds, which would hide a policy change, so the DROP goes in front of them as a rule.
    undo = _iptables_insert(
        node, "filter", "FORWARD", "-m", "comment", "--comment", "netconform-lab fault", "-j", "DROP"
    )
    return undo


def kube_proxy_down(node: Node) -> list[UndoStep]:
    proc.stop(f"{node.name}-kube-proxy")
    var = config.variant()
    if var.proxy_mode == "nftables":
        # kube-proxy's own tables, emptied (kept, as a crashed kube-proxy leaves them); a restart refills them
        for family in ("ip", "ip6") if var.dual else ("ip",):
            _sh(node, "nft", "flush", "table", family, "kube-proxy")
    else:
        for tool in ("iptables", "ip6tables") if var.dual else ("iptables",):
            _sh(node, tool, "-t", "nat", "-F", "KUBE-SERVICES")
    return [Restart("kube-proxy")]


HAIRPIN_MODES = "/sys/class/net/cni0/brif/*/hairpin_mode"


def hairpin_off(node: Node) -> list[UndoStep]:
    # Off on the node's cni0 ports now, and kept off on every port created later (the CNI bridge plugin
    # turns hairpin on at each pod ADD): pods started after the injection, such as a suite's, are hit too.
    off = f'for f in {HAIRPIN_MODES}; do [ -e "$f" ] && echo 0 > "$f"; done; true'
    _sh(node, "sh", "-c", off)
    name = f"{node.name}-hairpin-off"
    proc.start(
        name,
        ["ip", "netns", "exec", node.netns, "sh", "-c", f"while :; do {off}; sleep 0.3; done"],
        f"{node.cgroup}/system",
    )
    on = f'for f in {HAIRPIN_MODES}; do [ -e "$f" ] && echo 1 > "$f"; done; true'
    return [StopProcess(name), Command(("sh", "-c", on))]


def dns_down(node: Node) -> list[UndoStep]:
    replicas = control.kubectl(
        bin_dir(), "-n", "kube-system", "get", "deploy", "coredns", "-o", "jsonpath={.spec.replicas}"
    ).strip()
    control.kubectl(bin_dir(), "-n", "kube-system", "scale", "deploy", "coredns", "--replicas=0")
    return [ScaleDeployment("kube-system", "coredns", int(replicas or "2"))]


# --- issue 10 item 5(d): an intermittent path in the spirit of seed incident 2 (the diagnosis helper's one fault)
PER_SOURCE_LIST = "nc-per-source"


def per_source_limit(node: Node) -> list[UndoStep]:
    """Per-source state before kube-proxy's DNAT: a source's first new NodePort connection passes and marks the
    source; its later ones (for 10 minutes) are dropped. Behind NAT a whole node is one source, as in seed
    incident 2 (there tcp_tw_recycle, which this kernel no longer has)."""
    match = [
        "-p",
        "tcp",
        "--dport",
        "30000:32767",
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-m",
        "recent",
        "--name",
        PER_SOURCE_LIST,
    ]
    drop = [*match, "--rcheck", "--seconds", "600", "-j", "DROP"]
    mark = [*match, "--set"]
    undo = _iptables_insert(node, "mangle", "PREROUTING", *mark)  # checked second, after the drop
    return _iptables_insert(node, "mangle", "PREROUTING", *drop) + undo


FAULTS = {
    f.name: f
    for f in [
        Fault(
            "stale-arp",
            "stale-flannel-arp",
            "docs/faults.md #1 (seed 1): wrong MAC for every peer's flannel.1 in the node's neighbour table",
            stale_arp,
            VXLAN,
        ),
        Fault(
            "stale-arp-fdb",
            "stale-flannel-arp",
            "docs/faults.md #1 (seed 1): stale neighbour MAC plus a matching FDB entry (frames vanish at the peer)",
            lambda n: stale_arp(n, with_fdb=True),
            VXLAN,
        ),
        Fault(
            "stale-arp6",
            "stale-flannel-arp",
            "docs/faults.md #1: wrong MAC for every peer's flannel-v6.1 in the node's IPv6 neighbour table",
            lambda n: faults_dual.stale_neighbour6(n, STALE_MAC),
            Datapaths(backends=("vxlan",), families=("dual",)),
        ),
        Fault(
            "ip-masq",
            "masquerade-overlay",
            "docs/faults.md #3 (seed 3): dockerd --ip-masq rule `-s <podCIDR> ! -o cni0 -j MASQUERADE`",
            ip_masq,
        ),
        Fault(
            "missing-route",
            "missing-flannel-route",
            "docs/faults.md #4: no route to the peers' podCIDRs (flannel.1 on vxlan, via the peer on host-gw)",
            missing_route,
        ),
        Fault(
            "vxlan-blocked",
            "vxlan-port-blocked",
            "docs/faults.md #6: UDP 8472 (VXLAN) dropped on input",
            lambda n: _iptables_insert(n, "filter", "INPUT", "-p", "udp", "--dport", "8472", "-j", "DROP"),
            VXLAN_TUNNEL,
        ),
        Fault(
            "ip-forward-off",
            "ip-forward-off",
            "docs/faults.md #7: net.ipv4.ip_forward=0",
            lambda n: _sysctl(n, "net.ipv4.ip_forward", "0"),
            suite_passes="the suite's own pods heal it: flannel's CNI bridge plugin (isGateway) sets "
            "ip_forward=1 on every pod ADD",
        ),
        Fault(
            "forward-drop",
            "forward-drop",
            "docs/faults.md #8: FORWARD chain drops pod traffic (docker's policy DROP)",
            forward_drop,
        ),
        Fault(
            "bridge-nf-off",
            "bridge-nf-call-iptables-off",
            "docs/faults.md #9: net.bridge.bridge-nf-call-iptables=0",
            lambda n: _sysctl(n, "net.bridge.bridge-nf-call-iptables", "0"),
        ),
        Fault(
            "mtu-mismatch",
            "mtu-mismatch",
            "docs/faults.md #5: flannel.1 MTU below the pods' MTU (large transfers black-holed)",
            faults_mtu.overlay_below_pods,
            VXLAN,
        ),
        Fault(
            "mtu-uplink",
            "mtu-uplink-too-small",
            "docs/faults.md #5: the node's eth0 lowered to 1400, under flannel.1's 1450 + 50 of VXLAN",
            faults_mtu.uplink_below_overlay,
            VXLAN,
        ),
        Fault(
            "mtu-path",
            "mtu-path-too-small",
            "docs/faults.md #5: the node's switch port at 1400, both ends' eth0 at 1500 (silent drop)",
            faults_mtu.path_below_both,
            VXLAN,
        ),
        Fault(
            "mtu-route",
            "mtu-path-too-small",
            "docs/faults.md #5: the node's route to its peers with mtu 1400, its eth0 at 1500",
            faults_mtu.route_below_uplink,
            VXLAN,
            # seen on the lab (2026-12-03): 96 passed under it
            suite_passes="the kernel fragments the VXLAN packets the route's mtu cannot carry (flannel sets no DF outside)",
        ),
        Fault(
            "kube-proxy-down",
            "kube-proxy-rules-missing",
            "docs/faults.md #11: kube-proxy stopped and its service rules flushed",
            kube_proxy_down,
        ),
        Fault(
            "nodeport-firewall",
            "nodeport-blocked",
            "docs/faults.md #13: host firewall drops the NodePort range ahead of kube-proxy",
            # --syn: new connections only, as a host firewall means it; a stateless drop of every packet to
            # the range also ate replies to masqueraded connections whose random source port fell in it
            lambda n: _iptables_insert(
                n, "raw", "PREROUTING", "-p", "tcp", "--dport", "30000:32767", "--syn", "-j", "DROP"
            ),
        ),
        Fault(
            "hairpin-off",
            "hairpin-off",
            "docs/faults.md #14: hairpin mode off on the node's cni0 ports, also on ports added later",
            hairpin_off,
        ),
        Fault(
            "dns-down",
            "coredns-down",
            "docs/faults.md #16: CoreDNS scaled to zero (cluster-wide; --node is ignored)",
            dns_down,
            cluster_wide=True,
        ),
        *(
            Fault(
                f"dns-{kind}",
                "coredns-wrong-answer",
                f"docs/faults.md #22: a `{kind}` block in the Corefile answers a name wrongly (cluster-wide)",
                inject,
                cluster_wide=True,
            )
            for kind, inject in (
                ("hosts", faults_corefile.hosts),
                ("template", faults_corefile.template),
                ("rewrite", faults_corefile.rewrite),
            )
        ),
        Fault(
            "per-source-limit",
            "per-source-limit",
            "docs/faults.md #2 (seed 2, issue 10 5(d)): a source's first NodePort connection passes, later ones "
            "are dropped (per-source state, `-m recent`)",
            per_source_limit,
        ),
    ]
}


def listing() -> list[str]:
    """`ci/lab fault --list`: one line per fault with its name, expected cause, datapaths and incident."""
    lines = [f"{'FAULT':18} {'CAUSE':28} {'DATAPATHS':24} INCIDENT"]
    for f in FAULTS.values():
        lines.append(f"{f.name:18} {f.cause:28} {f.works_on.describe():24} {f.incident}")
    return lines


def _state() -> dict[str, dict[str, Any]]:
    path = config.STATE / "faults.json"
    return json.loads(path.read_text()) if path.exists() else {}


def inject(name: str, node_name: str) -> str:
    if name not in FAULTS:
        raise LabError(f"unknown fault {name}; `ci/lab fault --list` shows them")
    fault = FAULTS[name]
    node = node_by_name(node_name)
    refusal = fault.works_on.refusal(config.variant())
    if refusal:
        raise LabError(f"{name} does not apply here: {refusal}")
    state = _state()
    key = f"{name}@{node.name}"
    if key in state:
        return f"{key} is already injected"
    state[key] = {"node": node.name, "steps": [to_json(step) for step in fault.inject(node)]}
    (config.STATE / "faults.json").write_text(json.dumps(state, indent=1))
    return f"injected {name} on {node.name} (expected cause: {fault.cause}): {fault.incident}"


def _steps(entry: dict[str, Any]) -> list[UndoStep]:
    if "steps" in entry:
        return [from_json(doc) for doc in entry["steps"]]
    return [from_legacy(argv) for argv in entry.get("undo", [])]  # written by a checkout before the typed steps


def forget_unanswered_connections() -> None:
    """Drop every lab node's conntrack entries of TCP connections that never got an answer (SYN_SENT).

    A connection a fault dropped leaves such an entry for 120 s (nf_conntrack_tcp_timeout_syn_sent); a
    later connect from the same source port is, to conntrack, a retransmitted SYN of that flow and follows
    its old DNAT, whatever kube-proxy's rules say now (issue 17: a removed backend answered). Answered
    connections are left alone; a handshake in flight whose entry goes retransmits its SYN into a new one."""
    for target in config.nodes(config.node_count()):
        run_in_node(target, ["conntrack", "-D", "-p", "tcp", "--state", "SYN_SENT"], check=False)


def clear() -> list[str]:
    done = []
    state = _state()
    for key, entry in reversed(list(state.items())):
        target = node_by_name(str(entry["node"]))
        for step in _steps(entry):
            step.apply(target)
        done.append(f"cleared {key}")
    if done:
        forget_unanswered_connections()
    (config.STATE / "faults.json").unlink(missing_ok=True)
    return done or ["no fault was injected"]
