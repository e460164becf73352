"""The pytest plugin end to end in pytester, with node evidence from the recorded stale_arp case."""

import json
import xml.etree.ElementTree as ET

import pytest

import netconform.plugin.diagnose as P
from netconform.diagnose import Diagnosis

pytest_plugins = ["pytester"]

CONFTEST = '''
import json
import pytest
import netconform.plugin.diagnose as P
from netconform.diagnose import Diagnoser
from netconform.nodes import AccessSpec, NodeHosts
from tests.unit.diagnose.conftest import load_case

pytest_plugins = ["netconform.plugin.nodes", "netconform.plugin.diagnose"]

class RecordedDiagnoser(Diagnoser):
    """Real Diagnoser logic; only where evidence comes from is replaced (no cluster here)."""
    def __init__(self, config):
        self.recorded = load_case("stale_arp", extra=json.loads(config.getini("extra_nodes") or "{}"))
        self.gathered_nodes = []
        # node access none: never used, _gather is replaced
        super().__init__(None, NodeHosts(AccessSpec("none")), "netconform-test", [], sorted(self.recorded.nodes))
    def facts(self):
        return self.recorded.facts
    def _gather(self, node):
        self.gathered_nodes.append(node)
        return self.recorded.nodes[node]

def pytest_addoption(parser):
    parser.addini("extra_nodes", "")

def pytest_configure(config):
    P._active = lambda config: True
    config.stash[P._DIAG] = RecordedDiagnoser(config)
'''

TESTS = """
import json, pytest

def path(src, dst, target, error="timeout"):
    return ("netconform_path", {"check": "pod_to_pod", "src_node": src, "dst_node": dst, "target": target,
                                "error": error, "seen_ip": None})

@pytest.mark.parametrize("src,dst,ip", [("lab-node-1", "lab-node-2", "10.244.2.2"),
                                        ("lab-node-2", "lab-node-1", "10.244.1.2")])
def test_cross(request, src, dst, ip):
    request.node.user_properties.append(path(src, dst, ip + ":8080"))
    assert False, "timeout"

def test_service(request):
    request.node.user_properties.append(("netconform_path", {"check": "service", "src_node": "lab-node-1",
        "dst_node": None, "target": "10.96.100.10:8080", "error": "timeout", "seen_ip": None}))
    assert False

def test_same_node_unexplained(request):
    request.node.user_properties.append(path("lab-node-1", "lab-node-1", "10.244.1.3:8080"))
    assert False

def test_without_path_is_left_alone():
    assert False

def test_passes(request):
    request.node.user_properties.append(path("lab-node-1", "lab-node-2", "10.244.2.2:8080", None))
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_paths=TESTS)
    pytester.makeini('[pytest]\nextra_nodes = {"lab-node-2": "healthy"}\n')
    return pytester


def test_sections_and_root_cause_summary(suite: pytest.Pytester):
    res = suite.runpytest("-p", "no:cacheprovider", "-p", "no:netconform")
    res.assert_outcomes(failed=5, passed=1)
    out = res.stdout.str()
    assert out.count("netconform diagnosis") == 4  # the test without a path gets none
    res.stdout.fnmatch_lines(
        [
            "*most likely: stale-flannel-arp on lab-node-1*",
            "*ip neigh replace 10.244.2.0 lladdr 4e:00:00:00:00:02 dev flannel.1 nud permanent*",
            "*= root causes =*",
            "stale-flannel-arp on lab-node-1 explains 3 failures:*",
            "1 of 4 failures have no diagnosed cause (first: test_paths.py::test_same_node_unexplained)",
        ]
    )


def test_findings_exposed_on_the_report(suite: pytest.Pytester):
    rec = suite.inline_run("-p", "no:cacheprovider", "-p", "no:netconform")
    reps = {r.nodeid.split("::")[-1]: r for r in rec.getreports("pytest_runtest_logreport") if r.when == "call"}
    service = Diagnosis.of(reps["test_service"])
    assert service is not None
    f = service.findings[0]
    assert f["cause"] == "stale-flannel-arp" and f["node"] == "lab-node-1" and f["evidence"]
    assert service.causes == ["stale-flannel-arp@lab-node-1"] and service.error is None
    assert sorted(service.evidence) == ["lab-node-1"]  # the nodes on its paths and findings that were read
    assert "### neigh_flannel (rc=0)" in service.evidence["lab-node-1"]
    unexplained = Diagnosis.of(reps["test_same_node_unexplained"])
    assert unexplained is not None and unexplained.findings == []
    assert Diagnosis.of(reps["test_without_path_is_left_alone"]) is None
    assert Diagnosis.of(reps["test_passes"]) is None
    assert ("netconform_cause", '["stale-flannel-arp@lab-node-1"]') in reps["test_service"].user_properties


def test_evidence_gathered_once_per_node(suite: pytest.Pytester):
    rec = suite.inline_run("-p", "no:cacheprovider", "-p", "no:netconform")
    diag = rec.getcalls("pytest_unconfigure")[0].config.stash[P._DIAG]
    assert sorted(diag.gathered_nodes) == ["lab-node-1", "lab-node-2"]


def test_diagnose_only_runs_rules_without_tests(suite: pytest.Pytester):
    res = suite.runpytest("-p", "no:cacheprovider", "-p", "no:netconform", "--diagnose-only")
    assert res.ret == 1  # findings -> non-zero
    out = res.stdout.str()
    assert "passed" not in out and "6 deselected" in out
    res.stdout.fnmatch_lines(
        ["*= node health (--diagnose-only) =*", "cause: stale-flannel-arp (confidence 0.9)", "1 finding"]
    )


def test_diagnose_only_healthy_exits_zero(pytester: pytest.Pytester):
    pytester.makeconftest(CONFTEST.replace('load_case("stale_arp"', 'load_case("healthy"'))
    pytester.makepyfile(test_paths=TESTS)
    res = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:netconform", "--diagnose-only")
    assert res.ret == 0
    res.stdout.fnmatch_lines(["0 findings: every rule passed"])


def test_diagnose_only_reports_a_risk_apart_and_exits_zero(pytester: pytest.Pytester):
    # recorded: strict rp_filter on lab-node-1, no packet dropped by it: a risk, not a cause
    pytester.makeconftest(CONFTEST.replace('load_case("stale_arp"', 'load_case("rp_filter_strict"'))
    pytester.makepyfile(test_paths=TESTS)
    res = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:netconform", "--diagnose-only")
    assert res.ret == 0
    res.stdout.fnmatch_lines(
        [
            "note: risk: lab-node-1 uses strict reverse-path filtering on * (no packet dropped by it so far); "
            "evidence: lab-node-1$ /proc/sys/net/ipv4/conf/all/rp_filter:1 | *; fix: on lab-node-1: sysctl -w "
            "net.ipv4.conf.all.rp_filter=2*",
            "0 findings: every rule passed",
        ]
    )
    assert "cause: rp-filter-strict" not in res.stdout.str()


def test_junit_carries_cause_node_and_fix_of_each_diagnosed_failure_as_json(suite: pytest.Pytester):
    """pytest's junitxml writes the teardown report's properties: the diagnosis must be there, as JSON."""
    suite.runpytest("-p", "no:cacheprovider", "-p", "no:netconform", "--junitxml=junit.xml")
    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(suite.path / "junit.xml").getroot().iter("testcase")
    }
    diagnosed = [
        "test_cross[lab-node-1-lab-node-2-10.244.2.2]",
        "test_cross[lab-node-2-lab-node-1-10.244.1.2]",
        "test_service",
    ]
    for name in diagnosed:
        props = cases[name]
        assert json.loads(props["netconform_cause"]) == ["stale-flannel-arp@lab-node-1"], props
        top = json.loads(props["netconform_findings"])[0]
        assert top["cause"] == "stale-flannel-arp" and top["node"] == "lab-node-1" and top["title"], top
        assert "ip neigh replace 10.244.2.0 lladdr 4e:00:00:00:00:02 dev flannel.1" in top["fix"], top
    # no finding: no cause properties (the failure stays undiagnosed); a pass carries none either
    for name in ("test_same_node_unexplained", "test_without_path_is_left_alone", "test_passes"):
        assert "netconform_cause" not in cases[name] and "netconform_findings" not in cases[name], cases[name]
