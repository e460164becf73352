"""Every rule against recorded healthy and broken node outputs (tests/data/recorded/README.md)."""

from pathlib import Path

import pytest

from netconform.checks import CHECKS
from netconform.diagnose import rules
from netconform.diagnose.rules import ALL_RULES, Rule, run_rules

from .conftest import load_case

# case -> (cause, node) that must be found; the healthy recording must give nothing
CASES = {
    "stale_arp": ("stale-flannel-arp", "lab-node-1"),
    "stale_fdb": ("stale-flannel-fdb", "lab-node-1"),
    "missing_route": ("missing-flannel-route", "lab-node-1"),
    "mtu_mismatch": ("mtu-mismatch", "lab-node-1"),
    "vxlan_blocked": ("vxlan-port-blocked", "lab-node-2"),
    "ip_forward_off": ("ip-forward-off", "lab-node-1"),
    "forward_drop": ("forward-drop", "lab-node-1"),
    "br_nf_off": ("bridge-nf-call-iptables-off", "lab-node-1"),
    "kube_proxy_missing": ("kube-proxy-rules-missing", "lab-node-1"),
    "nodeport_blocked": ("nodeport-blocked", "lab-node-1"),
    "hairpin_off": ("hairpin-off", "lab-node-1"),
    "masquerade": ("masquerade-overlay", "lab-node-1"),
    "masquerade_late": ("masquerade-overlay", "lab-node-1"),
    "tw_recycle_transcribed": ("tcp-tw-recycle", "lab-node-1"),
    "per_source_limit": ("per-source-limit", "lab-node-1"),
}


def test_healthy_recording_has_no_findings(healthy):
    assert run_rules(healthy) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_case_found_and_only_its_cause(case):
    cause, node = CASES[case]
    found = {(f.cause, f.node) for f in run_rules(load_case(case)) if f.confidence > 0}
    assert found == {(cause, node)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_finding_explains_checks_of_the_registry(case):
    # scope(checks=[...]) names netconform.checks' checks (DNS the check, not "dns" the probe protocol)
    named = {c for f in run_rules(load_case(case)) for s in f.explains for c in s.checks or ()}
    assert named <= {c.name for c in CHECKS}


def test_strict_rp_filter_that_dropped_nothing_is_a_risk_not_a_cause():
    # recorded: rp_filter=1 on lab-node-1, every path passed (TcpExtIPReversePathFilter absent = 0)
    findings = run_rules(load_case("rp_filter_strict"))
    assert [f for f in findings if f.confidence > 0] == []
    (r,) = [f for f in findings if f.risk]
    assert (r.cause, r.node) == ("rp-filter-strict", "lab-node-1")
    assert "lab-node-1$ /proc/sys/net/ipv4/conf/all/rp_filter:1" in r.evidence
    assert "lab-node-1$ nstat: TcpExtIPReversePathFilter 0" in r.evidence
    assert "net.ipv4.conf.all.rp_filter=2" in r.fix


def test_strict_rp_filter_that_drops_is_a_cause():
    ev = load_case("rp_filter_strict")
    ne = ev.nodes["lab-node-1"]
    ne.nstat["TcpExtIPReversePathFilter"] = 7  # as nstat would print after drops
    (f,) = [f for f in run_rules(ev) if f.confidence > 0]
    assert (f.cause, f.node, f.risk) == ("rp-filter-strict", "lab-node-1", False)
    assert "lab-node-1$ nstat: TcpExtIPReversePathFilter 7" in f.evidence


@pytest.mark.parametrize("cause", sorted(set(c for c, _ in CASES.values())))
def test_each_rule_silent_on_healthy(cause, healthy):
    assert ALL_RULES[cause](healthy) == []


def test_stale_arp_names_node_macs_owner_and_exact_fix():
    (f,) = ALL_RULES["stale-flannel-arp"](load_case("stale_arp"))
    assert "4e:00:00:00:0f:02" in f.title and "expected 4e:00:00:00:00:02, owned by lab-node-2" in f.title
    assert "lab-node-1$ ip neigh show dev flannel.1: 10.244.2.0 lladdr 4e:00:00:00:0f:02 PERMANENT" in f.evidence
    assert any("4e:00:00:00:0f:02 dst 192.0.2.12 self permanent" in e for e in f.evidence)  # the matching stale FDB
    assert "ip neigh replace 10.244.2.0 lladdr 4e:00:00:00:00:02 dev flannel.1 nud permanent" in f.fix
    assert "bridge fdb del 4e:00:00:00:0f:02 dev flannel.1" in f.fix


def test_stale_arp_mac_of_another_node_is_named():
    def swap(d):  # node 2's stale MAC is what a third node now owns
        d["nodes"].append(
            {
                "name": "lab-node-3",
                "internal_ip": "192.0.2.13",
                "pod_cidrs": ["10.244.3.0/24"],
                "annotations": {
                    "flannel.alpha.coreos.com/backend-data": '{"VtepMAC":"4e:00:00:00:0f:02"}',
                    "flannel.alpha.coreos.com/public-ip": "192.0.2.13",
                },
            }
        )

    fs = ALL_RULES["stale-flannel-arp"](load_case("stale_arp", swap))
    assert any("belongs to lab-node-3" in f.title for f in fs)


def test_masquerade_quotes_rule_verbatim_and_docker_opts():
    (f,) = ALL_RULES["masquerade-overlay"](load_case("masquerade"))
    assert any(e.endswith("-A POSTROUTING -s 10.244.1.0/24 ! -o cni0 -j MASQUERADE") for e in f.evidence)
    assert any('DOCKER_OPT_IPMASQ="--ip-masq=true"' in e for e in f.evidence)
    assert "10.244.1.0" in f.title


def test_tw_recycle_needs_the_sysctl_and_quotes_counter():
    (f,) = ALL_RULES["tcp-tw-recycle"](load_case("tw_recycle_transcribed"))
    assert "lab-node-1$ sysctl: net.ipv4.tcp_tw_recycle = 1" in f.evidence
    assert any("1843 passive connections rejected because of time stamp" in e for e in f.evidence)
    assert f.confidence > 0.9


def test_vxlan_block_quotes_rule_with_counter():
    (f,) = ALL_RULES["vxlan-port-blocked"](load_case("vxlan_blocked"))
    line = f.evidence[0]
    assert "-A INPUT -p udp -m udp --dport 8472 -j DROP" in line and "[0 pkts]" not in line


def test_forward_drop_shows_policy_counter():
    (f,) = ALL_RULES["forward-drop"](load_case("forward_drop"))
    assert f.evidence[0].startswith("lab-node-1$ iptables-save -t filter: :FORWARD DROP [")


def test_no_endpoints_reported_from_api_with_reject_rule():
    def empty(d):
        d["services"][0]["endpoints"] = []

    ev = load_case("no_endpoints", empty)
    found = [f for f in run_rules(ev) if f.confidence > 0]
    assert [(f.cause, f.node) for f in found] == [("service-no-endpoints", None)]
    assert any("has no endpoints" in e and "REJECT" in e for e in found[0].evidence)


def test_no_endpoints_silent_when_api_has_endpoints(healthy):
    assert ALL_RULES["service-no-endpoints"](healthy) == []


def test_coredns_down_and_crashloop():
    def down(d):
        d["services"][2]["endpoints"] = []
        d["coredns"][0].update(ready=False, reason="CrashLoopBackOff", restarts=7)

    (f,) = ALL_RULES["coredns-down"](load_case("healthy", down))
    assert f.node is None and any("CrashLoopBackOff" in e for e in f.evidence)

    def one_bad(d):
        d["coredns"].append(
            {
                "namespace": "kube-system",
                "name": "coredns-x",
                "node": "lab-node-1",
                "phase": "Running",
                "ready": False,
                "reason": "CrashLoopBackOff",
            }
        )

    (g,) = ALL_RULES["coredns-down"](load_case("healthy", one_bad))
    assert g.node == "lab-node-1" and g.confidence < f.confidence


def test_unreachable_node_is_a_finding_not_a_crash(healthy):
    healthy.nodes["lab-node-2"].error = "agent pod not ready after 90s (nc-agent-x: ImagePullBackOff)"
    fs = run_rules(healthy)
    assert [f.title for f in fs] == [
        "could not inspect lab-node-2: agent pod not ready after 90s (nc-agent-x: ImagePullBackOff)"
    ]


def test_missing_tool_is_reported():
    ev = load_case("healthy")
    text = ev.nodes["lab-node-1"].sections["iptables"]
    from netconform.diagnose.evidence import Section

    ev.nodes["lab-node-1"].sections["iptables"] = Section("iptables", 127, "sh: 1: iptables-save: not found")
    assert text.ok
    titles = [f.title for f in run_rules(ev)]
    assert any("could not fully inspect lab-node-1: iptables: command not found" in t for t in titles)


def test_a_crashing_rule_becomes_a_finding(healthy):
    def boom(ev):
        raise RuntimeError("bug")

    fs = run_rules(healthy, [Rule(cause="x", category=None, run=boom)])
    assert fs[0].cause == "rule-error" and fs[0].title == "rule x failed: RuntimeError: bug"


def test_a_risk_is_rendered_apart_from_causes_in_a_failed_tests_diagnosis():
    from netconform.diagnose.diagnoser import render

    (r,) = [f for f in run_rules(load_case("rp_filter_strict")) if f.risk]
    text = render([], [r])
    assert text.startswith("no rule explains this failure from the evidence gathered\n")
    assert "risk: lab-node-1 uses strict reverse-path filtering on" in text and "; fix: on lab-node-1: sysctl" in text


def test_per_source_limit_quotes_the_drop_with_its_counter_and_the_set_rule():
    # recorded: lab-node-1 marks each source's first new NodePort connection (`recent --set`) and drops the
    # next ones (`--rcheck`); a pod on lab-node-2 dialled 192.0.2.11:31080 three times: 1 answered, 2 timed out
    (f,) = ALL_RULES["per-source-limit"](load_case("per_source_limit"))
    assert f.node == "lab-node-1" and f.confidence == 0.9
    assert "the first connection from a source passes, the next ones are dropped (4 packets so far)" in f.title
    assert f.evidence[0].startswith("lab-node-1$ iptables-save -t mangle: [4 pkts] -A PREROUTING -p tcp")
    assert "--rcheck --seconds 600 --name nc-per-source" in f.evidence[0]
    assert "--set --name nc-per-source" in f.evidence[1]
    assert f.fix.startswith("on lab-node-1: iptables -t mangle -D PREROUTING -p tcp -m tcp --dport 30000:32767")
    assert any(s.checks == frozenset({"stability", "nodeport"}) for s in f.explains)


def test_every_rule_module_is_registered_once_with_causes_of_its_own():
    # a rule module missing from MODULES would never run: the registry lists the package's modules
    modules = sorted(p.stem for p in Path(rules.__file__).parent.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(rules.MODULES) == modules
    causes = [c for r in rules.RULES for c in (r.cause, *(a for a, _ in r.also))]
    assert len(causes) == len(set(causes))


def test_a_cause_id_is_checked_where_it_is_declared():
    # it is matched unescaped in the report's categories
    with pytest.raises(ValueError, match="cause id 'Hairpin Off'"):
        Rule(cause="Hairpin Off", category="x", run=lambda ev: [])
