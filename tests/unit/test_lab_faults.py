"""The lab's fault records (ci/lablib/faults.py, no lab needed): each names a cause a rule emits, the
docs/faults.md entry it cites lists it with that cause, and its undo steps survive faults.json."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from netconform.diagnose.rules import ALL_RULES

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "docs/faults.md"


@pytest.fixture
def lablib(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType, ModuleType]]:
    """ci/lablib's config, faults and undo modules."""
    monkeypatch.syspath_prepend(str(REPO / "ci"))
    from lablib import config, faults, undo  # noqa: PLC0415 - ci/ is not a package of the project

    yield config, faults, undo
    for name in [m for m in sys.modules if m == "lablib" or m.startswith("lablib.")]:
        del sys.modules[name]


def catalog_entries() -> dict[int, tuple[set[str], set[str]]]:
    """docs/faults.md: entry number -> (the cause ids of its "cause:" line, the lab faults of its "lab:" line)."""
    entries = {}
    for number, body in re.findall(
        r'<a id="fault-(\d+)"></a>\n(.*?)(?=<a id="fault-|\n## |\Z)', CATALOG.read_text(), re.S
    ):
        fields = dict(re.findall(r"^- (cause|lab): (.*?)(?=^- |\Z)", body, re.M | re.S))
        ids = {key: set(re.findall(r"`([a-z0-9-]+)`", fields.get(key, ""))) for key in ("cause", "lab")}
        entries[int(number)] = (ids["cause"], ids["lab"])
    return entries


def test_every_fault_expects_a_cause_a_rule_emits(lablib: tuple[ModuleType, ModuleType, ModuleType]) -> None:
    _, faults, _ = lablib
    unknown = {f.name: f.cause for f in faults.FAULTS.values() if f.cause not in ALL_RULES}
    assert not unknown, f"no rule in netconform.diagnose.rules has these causes: {unknown}"


def test_the_catalog_entry_a_fault_cites_lists_it_with_its_cause(
    lablib: tuple[ModuleType, ModuleType, ModuleType],
) -> None:
    _, faults, _ = lablib
    entries = catalog_entries()
    assert len(entries) >= 20, "docs/faults.md entries not found (has the anchor format changed?)"
    for f in faults.FAULTS.values():
        cited = re.match(r"docs/faults\.md #(\d+)\b", f.incident)
        assert cited, f"{f.name}: its incident does not start with `docs/faults.md #N`: {f.incident!r}"
        causes, lab = entries[int(cited.group(1))]
        assert f.name in lab and f.cause in causes, (
            f"docs/faults.md #{cited.group(1)} should list lab fault `{f.name}` and cause `{f.cause}`; "
            f"it lists lab {sorted(lab)}, causes {sorted(causes)}"
        )


def test_a_fault_applies_only_to_the_datapaths_it_declares(lablib: tuple[ModuleType, ModuleType, ModuleType]) -> None:
    config, faults, _ = lablib
    host_gw = config.Variant(flannel_backend="host-gw")
    assert faults.FAULTS["ip-masq"].works_on.refusal(host_gw) is None
    refusal = faults.FAULTS["stale-arp"].works_on.refusal(host_gw)
    assert refusal == "it works on flannel backend vxlan; this lab runs host-gw"
    assert faults.Datapaths(families=("dual",)).refusal(config.Variant()) == (
        "it works on IP family dual; this lab runs ipv4"
    )
    listed = {line.split()[0]: line for line in faults.listing()[1:]}
    assert set(listed) == set(faults.FAULTS)
    assert "stale-flannel-arp" in listed["stale-arp"] and "flannel vxlan" in listed["stale-arp"]
    assert "bridge-nf-call-iptables-off" in listed["bridge-nf-off"] and "every datapath" in listed["bridge-nf-off"]


def test_undo_steps_read_back_from_faults_json(lablib: tuple[ModuleType, ModuleType, ModuleType]) -> None:
    import json

    _, _, undo = lablib
    steps = [
        undo.Command(("iptables", "-t", "raw", "-D", "PREROUTING", "-j", "DROP")),
        undo.SysctlRestore("net.ipv4.ip_forward", "1"),
        undo.Restart("kube-proxy"),
        undo.StopProcess("lab-node-2-hairpin-off"),
        undo.ScaleDeployment("kube-system", "coredns", 2),
        undo.SwitchCommand(("ip", "link", "set", "sw-n2", "mtu", "1500")),
        undo.ConfigMapRestore("kube-system", "coredns", "Corefile", ".:53 {\n    errors\n}\n", "coredns"),
    ]
    assert {type(s) for s in steps} == set(undo.KINDS.values()), "a step type without a round-trip case"
    written = json.loads(json.dumps([undo.to_json(s) for s in steps]))
    assert [undo.from_json(doc) for doc in written] == steps
    with pytest.raises(undo.LabError, match="unknown undo step"):
        undo.from_json({"kind": "reboot"})


def test_a_fault_recorded_before_the_typed_steps_still_clears(
    lablib: tuple[ModuleType, ModuleType, ModuleType],
) -> None:
    _, _, undo = lablib
    legacy = [
        ["netconform-lab", "restart-kube-proxy"],
        ["netconform-lab", "restart-flanneld"],
        ["netconform-lab", "stop", "lab-node-2-hairpin-off"],
        ["netconform-lab", "restore-coredns"],
        ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
    ]
    assert [undo.from_legacy(argv) for argv in legacy] == [
        undo.Restart("kube-proxy"),
        undo.Restart("flanneld"),
        undo.StopProcess("lab-node-2-hairpin-off"),
        undo.ScaleDeployment("kube-system", "coredns", 2),
        undo.Command(("sysctl", "-qw", "net.ipv4.ip_forward=1")),
    ]


def test_a_corefile_block_goes_after_errors_at_its_indent(lablib: tuple[ModuleType, ModuleType, ModuleType]) -> None:
    """What `ci/lab fault dns-*` writes into the lab's Corefile (its real first lines), and a Corefile it refuses."""
    sys.path.insert(0, str(REPO / "ci"))
    from lablib import faults_corefile  # noqa: PLC0415

    lab = ".:53 {\n    errors\n    health :8080\n}\n"
    assert faults_corefile.with_block(lab, faults_corefile.BLOCKS["rewrite"]) == (
        ".:53 {\n    errors\n    rewrite name kubernetes.default.svc.cluster.local "
        "kube-dns.kube-system.svc.cluster.local\n    health :8080\n}\n"
    )
    hosts = faults_corefile.with_block(lab, faults_corefile.BLOCKS["hosts"]).split("\n")
    assert hosts[2:6] == [
        "    hosts {",
        "        10.96.99.99 kubernetes.default.svc.cluster.local",
        "        fallthrough",
        "    }",
    ]
    with pytest.raises(faults_corefile.LabError, match="no `errors` line"):
        faults_corefile.with_block(".:53 {\n    health\n}\n", ["hosts"])


def test_only_faults_declared_for_cilium_apply_on_the_cilium_lab(
    lablib: tuple[ModuleType, ModuleType, ModuleType],
) -> None:
    """The tunnel port is blocked the same way on Cilium's VXLAN tunnel; flannel's device faults refuse there."""
    config, faults, _ = lablib
    cilium = config.Variant(cni="cilium")
    on_cilium = sorted(name for name, f in faults.FAULTS.items() if f.works_on.refusal(cilium) is None)
    assert on_cilium == ["vxlan-blocked"]
    assert faults.FAULTS["stale-arp"].works_on.refusal(cilium) == (
        "it is made and diagnosed on flannel's datapath; this lab runs Cilium"
    )
    assert faults.FAULTS["vxlan-blocked"].works_on.refusal(config.Variant(flannel_backend="host-gw")) == (
        "it works on flannel backend vxlan; this lab runs host-gw"
    )
    assert faults.FAULTS["vxlan-blocked"].works_on.describe() == "flannel vxlan; Cilium"
