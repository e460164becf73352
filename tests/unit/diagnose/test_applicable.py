"""Which rules run on which datapath (diagnose.rules.applicable), pinned per proxy mode and flannel backend.

The datapath is what diagnose.datapath reads from the recorded healthy lab (tests/data/recorded/healthy):
the ConfigMap's kube-proxy mode and flannel's backend-type annotation, set here per case; "no kube-proxy"
takes out the KUBE-* rules, "no flannel" flannel's device and subnet file, as test_datapath.py does. A rule never judges a datapath it
does not know: the VXLAN device's rules only on vxlan, flannel's routes on vxlan and host-gw.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from netconform.diagnose.datapath import datapath
from netconform.diagnose.evidence import ClusterEvidence, NodeEvidence, Section
from netconform.diagnose.facts_record import facts_from_dict
from netconform.diagnose.rules import ALL_RULES, applicable

from .conftest import load_case

# the rules that judge flannel's VXLAN device (flannel.1), and flannel's routes
VXLAN_DEVICE = {
    "stale-flannel-arp",
    "stale-flannel-fdb",
    "vxlan-port-blocked",
    "mtu-mismatch",
    "mtu-uplink-too-small",
    "mtu-path-too-small",
}
# flannel's routes, or its devices walked for a pod->pod packet (cni0 in, flannel.1 or the host-gw route out)
FLANNEL_ROUTES = {"missing-flannel-route", "masquerade-overlay"}

# flannel backend (None: no flannel seen) -> the causes whose rules do not run there, whatever kube-proxy's
# mode; every other rule runs on every datapath
NOT_ON = {
    "vxlan": set(),
    "host-gw": VXLAN_DEVICE,
    "udp": VXLAN_DEVICE | FLANNEL_ROUTES,
    "wireguard": VXLAN_DEVICE | FLANNEL_ROUTES,
    None: VXLAN_DEVICE | FLANNEL_ROUTES,
}


def cluster(proxy: str | None, backend: str | None) -> ClusterEvidence:
    ev = load_case("healthy")
    ev.facts.proxy_mode = proxy
    for name, nf in ev.facts.nodes.items():
        ev.facts.nodes[name] = dataclasses.replace(nf, backend_type=backend)
    for ne in ev.nodes.values():
        if proxy is None:  # no KUBE-* chain: kube-proxy replaced
            _strip(ne, "iptables", r"KUBE-")
        if backend is None:  # no flannel.1, no subnet.env: not flannel's
            _strip(ne, "link", r"flannel\.1|^\s")
            ne.sections.pop("subnet_env", None)
    return ev


def _strip(ne: NodeEvidence, section: str, pattern: str) -> None:
    s = ne.sections[section]
    kept = "\n".join(line for line in s.text.splitlines() if not re.search(pattern, line))
    ne.sections[section] = Section(section, s.rc, kept)


@pytest.mark.parametrize("proxy", ["iptables", "nftables", "ipvs", None])
@pytest.mark.parametrize("backend", sorted(NOT_ON, key=str))
def test_applicable_rules_per_datapath(proxy: str | None, backend: str | None) -> None:
    ev = cluster(proxy, backend)
    dp = datapath(ev)
    assert (dp.proxy, dp.backend) == (proxy, backend)
    assert set(applicable(ev)) == set(ALL_RULES) - NOT_ON[backend]


def test_the_rules_left_out_are_rules() -> None:
    assert set(ALL_RULES) >= VXLAN_DEVICE | FLANNEL_ROUTES


def test_on_cilium_only_the_tunnel_port_rule_of_the_vxlan_ones_runs() -> None:
    """The Cilium lab as recorded (tests/data/recorded/variants/cilium-vxlan-ipv4/dxo_healthy): its VXLAN tunnel
    is judged for a blocked port; flannel.1's neighbours, FDB and MTU, and flannel's routes, are not."""
    d = Path(__file__).resolve().parents[2] / "data/recorded/variants/cilium-vxlan-ipv4/dxo_healthy"
    facts = facts_from_dict(json.loads((d / "facts.json").read_text()))
    ev = ClusterEvidence(facts, {f.stem: NodeEvidence.from_output(f.stem, f.read_text()) for f in d.glob("*.txt")})
    dp = datapath(ev)
    assert (dp.proxy, dp.backend, dp.cilium, dp.foreign) == ("iptables", None, "vxlan tunnel", ())
    assert set(applicable(ev)) == set(ALL_RULES) - (VXLAN_DEVICE - {"vxlan-port-blocked"}) - FLANNEL_ROUTES
