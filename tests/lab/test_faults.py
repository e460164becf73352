"""The fault matrix, for real: inject each lab fault on one node, run the suite, check the diagnosis.

Marked `lab`; skipped unless NETCONFORM_LAB_KUBECONFIG is set. Every case holds the shared lab lock
(/tmp/netconform-lab.lock, via tests.lab.conftest.lab_lock) and clears its fault in a `finally` before
the lock is released. The suite runs in a subprocess exactly as an operator runs it, plus:
  --dial-timeout 0.5 --stability-count 20   every broken path costs one timeout per attempt; with the
      defaults (2 s, 100) a node whose overlay is broken spends ~4 minutes in the stability checks
      alone. The lab answers in well under a millisecond, so 0.5 s loses nothing.
  --diagnose-record DIR   what the diagnosis read (kept under pytest's tmp dir for a failed case)
What is asserted is what the operator reads: the first line of the "root causes" summary.
Set NETCONFORM_FAULT_TABLE=FILE to get one markdown row per case appended to FILE (tests/lab/FAULT_TABLE.md).

What each fault must be diagnosed as comes from its record in ci/lablib/faults.py (`Fault`: the cause, the
datapaths it works on, cluster-wide or not, whether the suite stays green under it); this file adds only the
failure messages some checks must print. The matrix runs on whichever variant is up (ci/lab up
--proxy-mode/--flannel-backend/--ip-family, read from the lab's state file /var/lib/netconform-lab/variant.json):
a fault is skipped on a datapath its record does not declare (ci/lab refuses it there), and the expected
cause and node are the same on every variant it declares.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.conftest import REPO, lab, lab_lock, run_suite

sys.path.insert(0, str(REPO / "ci"))
from lablib import config as lab_config  # noqa: E402 - ci/ is not a package of the project
from lablib.faults import FAULTS, Datapaths, Fault  # noqa: E402

pytestmark = pytest.mark.lab
NODE = "lab-node-2"
KUBE = "/var/lib/netconform-lab/bin/kube"
FAST = ("--dial-timeout", "0.5", "--stability-count", "20")
CILIUM_NOTE = (
    f"note: not covered: Cilium (vxlan tunnel, kube-proxy kept, {lab_config.variant().proxy_mode} mode): Cilium's own "
    "datapath (endpoints, ipcache, tunnel map, policy verdicts) is not judged yet; flannel's rules do not run"
)


def variant() -> lab_config.Variant:
    """The variant that is up (ci/LAB.md; lablib's reader: the default shape when no state file was written)."""
    return lab_config.variant()


def variant_name() -> str:
    v = variant()
    return f"{v.proxy_mode}/{v.flannel_backend}/{v.ip_family}"


def skip_unless_declared(name: str, works_on: Datapaths) -> None:
    refusal = works_on.refusal(variant())
    if refusal:
        pytest.skip(f"{name} is not declared for this datapath: {refusal} (ci/lablib/faults.py)")


@dataclass(frozen=True)
class Case:
    """One row of the matrix: a lab fault's record, with what this file adds to it."""

    fault: Fault
    message: str = ""  # a regex the one-line failure message of the check that catches it must match

    @property
    def expected(self) -> tuple[str, str | None]:
        """The top-ranked cause and the node it must name (None: cluster-wide)."""
        return self.fault.cause, None if self.fault.cluster_wide else NODE


MESSAGES = {
    # suites/test_mtu.py: full-size DF datagrams from lab-node-2's pods meet flannel.1's MTU of 1000
    "mtu-mismatch": r"lab-node-2\) -> UDP \S+ \([^)]+\): 1450-byte IPv4 packets \(the pod MTU: 1422-byte UDP payload "
    r"\+ 28, DF set\) (do not get through|reached \d/3 backends)[^\n]*too big for a route MTU of 1000",
    # suites/test_hairpin.py: lab-node-2's client cannot reach itself through nc-hairpin
    "hairpin-off": r"lab-node-2\) -> \S+ \(ClusterIP nc-hairpin, internalTrafficPolicy Local: this pod itself\): "
    r"timeout after 0.5s; the dialing pod is that Service's only endpoint on lab-node-2",
}
CASES = [Case(f, MESSAGES.get(f.name, "")) for f in FAULTS.values()]


def apply_corefile_fix(fix: str) -> None:
    """`kubectl -n kube-system edit configmap coredns: remove the <plugin> block, Corefile lines A-B; then
    kubectl -n kube-system rollout restart deployment coredns ...`: those lines deleted, that command run."""
    spans = [(int(a), int(b or a)) for a, b in re.findall(r"Corefile lines? (\d+)(?:-(\d+))?", fix)]
    restart = re.search(r"(kubectl -n kube-system rollout restart deployment coredns)", fix)
    assert spans and restart and "edit configmap coredns" in fix, f"not a Corefile fix: {fix}"
    doc = json.loads(kubectl("-n", "kube-system", "get", "configmap", "coredns", "-o", "json"))
    lines = doc["data"]["Corefile"].split("\n")
    drop = {n for a, b in spans for n in range(a, b + 1)}
    kept = "\n".join(line for n, line in enumerate(lines, 1) if n not in drop)
    kubectl(
        "-n",
        "kube-system",
        "patch",
        "configmap",
        "coredns",
        "--type=merge",
        "-p",
        json.dumps({"data": {"Corefile": kept}}),
    )
    kubectl(*restart.group(1).split()[1:])
    kubectl("-n", "kube-system", "rollout", "status", "deployment", "coredns", "--timeout=120s")


def apply_node_command(fix: str) -> None:
    """`on <node>: ip link set <dev> mtu <n> ...` or `on <node>: ip route replace <route> (...)`: that command run
    in the node (its netns, as root there)."""
    m = re.match(r"on (lab-node-\d): (ip link set [a-z0-9.]+ mtu \d+|ip (?:-6 )?route replace [^(;]+?)(?: \(|;|$)", fix)
    assert m, f"not a node command: {fix}"
    node = lab_config.Node(int(m.group(1).rsplit("-", 1)[1]))
    subprocess.run(["ip", "netns", "exec", node.netns, *m.group(2).split()], check=True, timeout=30)
    then_restarts(fix)


def apply_network_mtu(fix: str) -> None:
    """`raise the MTU of <node>'s link to the network (its switch port ...) to >= N`: on the lab that link is
    the node's port on the lab switch (the veth peer of its eth0 in nclab-sw), set to N."""
    m = re.match(r"raise the MTU of (lab-node-\d)'s link to the network \(its switch port[^)]*\) to >= (\d+)", fix)
    assert m, f"not a network MTU fix: {fix}"
    port = f"sw-n{m.group(1).rsplit('-', 1)[1]}"
    sw = ["ip", "netns", "exec", lab_config.SWITCH_NS]
    subprocess.run([*sw, "ip", "link", "set", port, "mtu", m.group(2)], check=True, timeout=30)
    then_restarts(fix)


def apply_rule_removal(fix: str) -> None:
    """`on <node>: remove the rule (iptables -t <table> -D <chain> <match>)`: that command run in the node."""
    m = re.fullmatch(r"on (lab-node-\d+): remove the rule \((iptables -t [a-z]+ -D [^()]+)\)", fix)
    assert m, f"not a rule removal: {fix}"
    node = lab_config.Node(int(m.group(1).rsplit("-", 1)[1]))
    subprocess.run(["ip", "netns", "exec", node.netns, *m.group(2).split()], check=True, timeout=30)


def then_restarts(fix: str) -> None:
    """What the fix does after the MTU step when a watch stalled behind it (rules/_consequences.py): `either
    way, then on <node>: restart kube-proxy (...)` is `ci/lab restart kube-proxy --node <node>`; `kubectl -n
    kube-system delete pod <coredns pods> (...)` is that kubectl."""
    then = fix.partition("; either way, then ")[2]
    for node in re.findall(r"on (lab-node-\d+): restart kube-proxy\b", then):
        lab("restart", "kube-proxy", "--node", node)
    for pods in re.findall(r"kubectl -n kube-system delete pod ([\w.-]+(?: [\w.-]+)*) \(", then):
        kubectl("-n", "kube-system", "delete", "pod", *pods.split(), "--wait=true")


# Faults whose printed fix the matrix applies as printed, and the checks the next run selects (-k): that run
# must be green. Their diagnosis is asserted as in test_fault_is_diagnosed, which leaves them to this test.
FIXES = {
    "dns-hosts": (apply_corefile_fix, "dns"),
    "dns-template": (apply_corefile_fix, "dns"),
    "dns-rewrite": (apply_corefile_fix, "dns"),
    "mtu-uplink": (apply_node_command, "mtu"),
    "mtu-path": (apply_network_mtu, "mtu"),
    "vxlan-blocked": (apply_rule_removal, ""),  # every path across that node: the whole suite again
}


def kubectl(*args: str) -> str:
    done = subprocess.run(
        [KUBE, "kubectl", f"--kubeconfig={os.environ['NETCONFORM_LAB_KUBECONFIG']}", *args],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr.strip()[-500:]}"
    return done.stdout


@dataclass
class Outcome:
    rc: int
    seconds: float
    failed: int
    passed: int
    top: tuple[str, str | None] | None
    summary: list[str]
    diag_seconds: float | None
    stdout: str


SUMMARY_LINE = re.compile(r"^(\S+?)(?: on (\S+))? explains (\d+) failures?: ")


def run(kubeconfig: str, tmp: Path, *extra: str) -> Outcome:
    xml = tmp / "junit.xml"
    started = time.monotonic()
    done = run_suite(
        kubeconfig, "-q", *FAST, f"--junitxml={xml}", f"--diagnose-record={tmp / 'record'}", *extra, timeout=600
    )
    seconds = time.monotonic() - started
    failed = passed = 0
    if xml.exists():
        suite = ET.parse(xml).getroot().find("testsuite")
        if suite is not None:
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            passed = int(suite.get("tests", 0)) - failed - int(suite.get("skipped", 0))
    lines = done.stdout.splitlines()
    summary: list[str] = []
    if any("= root causes =" in line for line in lines):
        start = next(i for i, line in enumerate(lines) if "= root causes =" in line) + 1
        for line in lines[start:]:
            if line.startswith(("=", "netconform:")):
                break
            summary.append(line)
    top = None
    for line in summary:
        m = SUMMARY_LINE.match(line)
        if m:
            top = (m.group(1), m.group(2))
            break
    diag = re.search(r"^diagnosis: .*?([\d.]+)s gathering evidence", done.stdout, re.M)
    return Outcome(
        done.returncode,
        seconds,
        failed,
        passed,
        top,
        summary,
        float(diag.group(1)) if diag else None,
        done.stdout + done.stderr,
    )


def settle() -> None:
    """After a clear, wait (bounded) until CoreDNS is back: dns-down's clear scales it up asynchronously,
    and a CoreDNS pod still starting is a real (if transient) finding of --diagnose-only."""
    subprocess.run(
        [
            KUBE,
            "kubectl",
            f"--kubeconfig={os.environ['NETCONFORM_LAB_KUBECONFIG']}",
            "-n",
            "kube-system",
            "rollout",
            "status",
            "deploy/coredns",
            "--timeout=120s",
        ],
        capture_output=True,
        timeout=150,
    )


def table_row(fault: str, out: Outcome, right: bool, note: str = "") -> None:
    path = os.environ.get("NETCONFORM_FAULT_TABLE")
    if not path:
        return
    fixes = [line.strip()[5:] for line in out.summary if line.strip().startswith("fix: ")]
    if fixes and right:
        note = (note + "; " if note else "") + f"fix: `{fixes[0]}`"
    top = f"{out.top[0]}" if out.top else "(none)"
    node = (out.top[1] or "cluster-wide") if out.top else "-"
    diag = f"{out.diag_seconds:.1f}s" if out.diag_seconds is not None else "-"
    with open(path, "a") as fh:
        fh.write(
            f"| {fault} | {out.failed} | {top} | {node} | {'right' if right else 'WRONG'} | "
            f"{diag} | {out.seconds:.0f}s | {note} |\n"
        )


def test_every_lab_fault_is_in_the_matrix(lab_kubeconfig: str) -> None:
    """`ci/lab fault --list` lists every record, with its cause; this file's messages name real faults."""
    lines = lab("fault", "--list").stdout.splitlines()[1:]  # after the header
    assert {line.split()[0]: line.split()[1] for line in lines if line.strip()} == {
        f.name: f.cause for f in FAULTS.values()
    }
    assert set(MESSAGES) <= set(FAULTS)


def assert_diagnosed(case: Case, out: Outcome, note: str = "") -> None:
    right = out.top == case.expected
    table_row(case.fault.name, out, right, note)
    assert out.rc == 1 and out.failed > 0, out.stdout[-3000:]
    assert right, f"top-ranked {out.top}, expected {case.expected}:\n" + "\n".join(out.summary)
    assert not any("have no diagnosed cause" in line for line in out.summary), "\n".join(out.summary)
    if case.message:
        assert re.search(case.message, out.stdout), out.stdout[-5000:]


@pytest.mark.parametrize(
    "case", [c for c in CASES if not c.fault.suite_passes and c.fault.name not in FIXES], ids=lambda c: c.fault.name
)
def test_fault_is_diagnosed(case: Case, lab_kubeconfig: str, tmp_path: Path) -> None:
    skip_unless_declared(case.fault.name, case.fault.works_on)
    with lab_lock():
        try:
            lab("fault", case.fault.name, "--node", NODE)
            out = run(lab_kubeconfig, tmp_path)
        finally:
            lab("fault", "clear", check=False)
    assert_diagnosed(case, out)


@pytest.mark.parametrize("case", [c for c in CASES if c.fault.name in FIXES], ids=lambda c: c.fault.name)
def test_the_fix_as_printed_makes_the_next_run_green(case: Case, lab_kubeconfig: str, tmp_path: Path) -> None:
    """The fault diagnosed as in test_fault_is_diagnosed; then the summary's first fix applied as printed (FIXES)
    and the failed checks' module run again: green, while the fault's own undo has not run yet."""
    skip_unless_declared(case.fault.name, case.fault.works_on)
    apply, again = FIXES[case.fault.name]
    after: Outcome | None = None
    with lab_lock():
        try:
            lab("fault", case.fault.name, "--node", NODE)
            out = run(lab_kubeconfig, tmp_path)
            fixes = [line.strip()[5:] for line in out.summary if line.strip().startswith("fix: ")]
            if fixes and out.top == case.expected:
                apply(fixes[0])
                after = run(lab_kubeconfig, tmp_path / "after", *(["-k", again] if again else []))
        finally:
            lab("fault", "clear", check=False)
            settle()
    note = f"then the fix applied as printed, {f'`-k {again}`' if again else 'the whole suite'}: " + (
        f"{after.passed} passed, {after.failed} failed, exit {after.rc}" if after else "not applied"
    )
    assert_diagnosed(case, out, note)
    assert after is not None and after.rc == 0 and after.failed == 0 and after.passed > 0, (after or out).stdout[-3000:]


@pytest.mark.parametrize("case", [c for c in CASES if c.fault.suite_passes], ids=lambda c: c.fault.name)
def test_fault_invisible_to_the_suite_is_found_by_diagnose_only(
    case: Case, lab_kubeconfig: str, tmp_path: Path
) -> None:
    skip_unless_declared(case.fault.name, case.fault.works_on)
    with lab_lock():
        try:
            settle()
            lab("fault", case.fault.name, "--node", NODE)
            out = run(lab_kubeconfig, tmp_path, "--diagnose-only")
        finally:
            lab("fault", "clear", check=False)
    found = re.findall(r"^cause: (\S+) \(confidence [\d.]+\)\n  .*\n  node: (\S+)", out.stdout, re.M)
    right = found == [case.expected]
    out.top = found[0] if found else None
    table_row(case.fault.name, out, right, f"--diagnose-only ({case.fault.suite_passes})")
    assert out.rc == 1 and right, out.stdout[-3000:]


def test_healthy_variant_diagnose_only_finds_nothing(lab_kubeconfig: str, tmp_path: Path) -> None:
    """No fault: --diagnose-only on the variant that is up gives 0 findings and exit 0; no "not covered" note,
    but on Cilium the one that says its own datapath is not judged yet (diagnose/datapath.py)."""
    with lab_lock():
        lab("fault", "clear", check=False)
        settle()
        out = run(lab_kubeconfig, tmp_path, "--diagnose-only")
    notes = [line for line in out.stdout.splitlines() if line.startswith("note: ")]
    out.top = None
    table_row(
        "(healthy)",
        out,
        out.rc == 0,
        f"--diagnose-only on {variant_name()}: " + ("; ".join(notes) or "no note"),
    )
    assert out.rc == 0 and "0 findings: every rule passed" in out.stdout, out.stdout[-3000:]
    expected = [CILIUM_NOTE] if variant().cilium else []
    assert [n for n in notes if n.startswith("note: not covered")] == expected, notes


def test_stale_arp_with_one_node_uninspectable(
    lab_kubeconfig: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exec into lab-node-3's agent fails: the run finishes, lab-node-2's stale entry is still named."""
    skip_unless_declared("stale-arp", FAULTS["stale-arp"].works_on)
    monkeypatch.setenv("NETCONFORM_BREAK_NODE", "lab-node-3")
    with lab_lock():
        try:
            lab("fault", "stale-arp", "--node", NODE)
            # Cut (CI time): the pod-to-pod checks, not the whole suite: what is proved is that one node the
            # diagnosis cannot inspect does not stop it naming the cause on another. That the whole suite's
            # failures under stale-arp rank it first is test_fault_is_diagnosed[stale-arp]'s; these checks'
            # failures under it name it too (test_report_lab.py's stale-arp report).
            out = run(lab_kubeconfig, tmp_path, "-p", "tests.lab.break_node_access", "-k", "test_pod_to_pod")
        finally:
            lab("fault", "clear", check=False)
    assert out.rc == 1 and out.failed > 0, out.stdout[-3000:]
    assert out.top == ("stale-flannel-arp", NODE), "\n".join(out.summary)
    assert "note: could not inspect lab-node-3: exec into the agent on lab-node-3 failed: simulated" in out.stdout
    assert "Traceback" not in out.stdout


def test_stale_arp_pcap_shows_the_wrong_inner_mac(lab_kubeconfig: str, tmp_path: Path) -> None:
    """--capture-pcap: the frames lab-node-2 hands to flannel.1 carry the stale MAC as destination."""
    from netconform.diagnose import capture

    skip_unless_declared("stale-arp", FAULTS["stale-arp"].works_on)
    with lab_lock():
        try:
            lab("fault", "stale-arp", "--node", NODE)
            out = run(lab_kubeconfig, tmp_path, "--capture-pcap", "-k", "test_tcp_cross_node")
        finally:
            lab("fault", "clear", check=False)
    assert out.top == ("stale-flannel-arp", NODE), "\n".join(out.summary)
    assert re.search(
        r"lab-node-2-flannel.1: VXLAN inner destination MAC mismatch: on flannel.1 to 10\.244\.\d+\.\d+: "
        r"dst ee:ee:ee:00:00:01, expected VtepMAC",
        out.stdout,
    ), out.stdout[-3000:]
    facts = json.loads((tmp_path / "record" / "facts.json").read_text())
    vtep = {
        n["name"]: json.loads(n["annotations"]["flannel.alpha.coreos.com/backend-data"])["VtepMAC"]
        for n in facts["nodes"]
    }
    overlay = {c: vtep[n["name"]] for n in facts["nodes"] for c in n["pod_cidrs"]}
    underlay = {n["internal_ip"]: vtep[n["name"]] for n in facts["nodes"]}
    pcap_dir = tmp_path / "record" / "pcap"
    fl = sorted(pcap_dir.glob("*lab-node-2-flannel.1.pcap"))
    assert fl, f"no flannel.1 pcap saved in {pcap_dir}"
    an = capture.analyse(fl[0].read_bytes(), underlay, overlay_macs=overlay)
    assert an.vxlan_mac_mismatch and all("dst ee:ee:ee:00:00:01" in m for m in an.vxlan_mac_mismatch)
    # on the underlay nothing carries the stale MAC: with no FDB entry for it the VXLAN driver drops the
    # frame instead of encapsulating it (with stale-arp-fdb it would leave eth0, to the peer)
    eth = sorted(pcap_dir.glob("*lab-node-2.pcap"))
    assert eth and not capture.analyse(eth[0].read_bytes(), underlay).vxlan_mac_mismatch


VETH_LINE = re.compile(
    r"^  (lab-node-\d)-(veth[0-9a-f]{1,11}): taken on \2, the host side of (client|server) pod (nc-\w+-\w+) "
    r"\((10\.244\.\d+\.\d+)\): the veth peer of the pod's eth0 \(iflink \d+\); the route names cni0",
    re.M,
)


def probe_tuples(pcap: Path) -> list[tuple[int, tuple[str, str], tuple[int, int]]]:
    """(captured length, addresses, TCP ports) of every packet, the inner headers of a VXLAN one."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import PcapReader

    out = []
    for pkt in PcapReader(str(pcap)):
        inner = pkt[VXLAN].payload if pkt.haslayer(VXLAN) else pkt
        ip = inner[IP] if inner.haslayer(IP) else inner[IPv6] if inner.haslayer(IPv6) else None
        tcp = inner[TCP] if inner.haslayer(TCP) else None
        out.append(
            (len(bytes(pkt)), (str(ip.src), str(ip.dst)) if ip else ("", ""), (tcp.sport, tcp.dport) if tcp else (0, 0))
        )
    return out


def test_stale_arp_capture_on_the_pods_veths_holds_only_the_probe(lab_kubeconfig: str, tmp_path: Path) -> None:
    """--capture-pcap: the pcaps are taken on the probe pods' host-side veths (the route names cni0, the pod's
    iflink names the veth), the verdict says where the SYN or SYN-ACK was lost, and every pcap of the run
    holds the probe's flows only, headers only (capture_filter.snap_length)."""
    skip_unless_declared("stale-arp", FAULTS["stale-arp"].works_on)
    with lab_lock():
        try:
            lab("fault", "stale-arp", "--node", NODE)
            out = run(lab_kubeconfig, tmp_path, "--capture-pcap", "--capture-seconds=4", "-k", "test_tcp_cross_node")
        finally:
            lab("fault", "clear", check=False)
    assert out.top == ("stale-flannel-arp", NODE), "\n".join(out.summary)
    veths = {m.group(3): m.groups() for m in VETH_LINE.finditer(out.stdout)}
    assert veths.keys() == {"client", "server"}, out.stdout[-4000:]
    client_node, server_node = veths["client"][0], veths["server"][0]
    assert NODE in (client_node, server_node)
    ci, si = veths["client"][1], veths["server"][1]
    if client_node == NODE:  # lab-node-2's frames to its peers carry the stale MAC: the SYN never arrives
        want = f"verdict: the client's SYNs left on {ci} and never reached the server pod's {si}: lost on the way there"
    else:  # the SYN arrives, the server's SYN-ACK leaves lab-node-2 with the stale MAC
        want = f"verdict: the server pod answered on {si} (SYN-ACK), and the answers never reached the client's {ci}"
    assert want in out.stdout, out.stdout[-4000:]
    probe_ips = {veths["client"][4], veths["server"][4]}
    pcaps = sorted((tmp_path / "record" / "pcap").glob("*.pcap"))
    by_kind = {"veth": 0, "flannel": 0, "any": 0}
    for f in pcaps:
        kind = "veth" if "-veth" in f.name else "flannel" if "flannel.1" in f.name else "any"
        snap = 150 if kind == "any" else 94  # IPv4 (capture_filter.snap_length)
        seen = probe_tuples(f)
        by_kind[kind] += len(seen)
        for length, addrs, ports in seen:
            assert length <= snap, f"{f.name}: a {length}-byte packet kept, more than the headers"
            assert 8080 in ports and set(addrs) & probe_ips, f"{f.name}: {addrs} {ports} is not the probe's flow"
        if kind == "veth":  # a pod's own veth: only that pod's address, with its peer on the path
            pod_ip = next(v[4] for v in veths.values() if f.name.endswith(f"-{v[0]}-{v[1]}.pcap"))
            assert all(pod_ip in addrs for _, addrs, _ in seen), f.name
    assert by_kind["veth"] > 0 and by_kind["flannel"] > 0, by_kind


def test_after_clear_the_suite_is_green_and_the_nodes_healthy(lab_kubeconfig: str, tmp_path: Path) -> None:
    fault = "stale-arp" if variant().flannel_backend == "vxlan" else "missing-route"
    with lab_lock():
        try:
            lab("fault", fault, "--node", NODE)
        finally:
            lab("fault", "clear", check=False)
        settle()
        out = run(lab_kubeconfig, tmp_path)
        health = run(lab_kubeconfig, tmp_path / "health", "--diagnose-only")
    assert out.rc == 0 and out.failed == 0 and out.passed > 0, out.stdout[-3000:]
    assert health.rc == 0 and "0 findings: every rule passed" in health.stdout, health.stdout[-3000:]
