"""The public Diagnosis: its one way onto a pytest report and back, also across xdist's serialization."""

from __future__ import annotations

import json
from types import SimpleNamespace

import execnet
from _pytest.reports import TestReport

from netconform.diagnose import CAUSE_PROPERTY, FINDINGS_PROPERTY, SECTION, Diagnosis

FINDINGS = [
    {
        "cause": "stale-flannel-arp",
        "node": "lab-node-1",
        "title": "stale entry",
        "confidence": 0.9,
        "fix": "ip neigh flush",
    },
    {"cause": "vxlan-port-blocked", "node": None, "title": "udp 8472 dropped", "confidence": 0.5},
    {"cause": "mtu-mismatch", "node": "lab-node-2", "title": "mtu", "confidence": 0.4},
    {"cause": "rp-filter", "node": "lab-node-3", "title": "strict", "confidence": 0.3},
]


def report() -> TestReport:
    return TestReport("suites/test_x.py::test_y", ("suites/test_x.py", 1, "test_y"), {}, "failed", None, "call", [])


def test_attach_puts_section_and_cause_property_and_of_reads_it_back_after_xdist() -> None:
    d = Diagnosis(
        text="most likely: stale-flannel-arp on lab-node-1\n",
        findings=FINDINGS,
        gaps=["could not inspect lab-node-3: no agent"],
        seconds=1.25,
        evidence={"lab-node-1": "### route (rc=0)\ndefault via 10.99.0.1\n\n"},
    )
    d.add_pcap("lab-node-1", b"\xd4\xc3\xb2\xa1pcap")
    r, item = report(), SimpleNamespace(user_properties=[("netconform_path", "{}")])
    d.attach(r, item)
    assert r.sections == [(SECTION, d.text)]
    assert r.user_properties == d.properties() == item.user_properties[1:]
    props = dict(r.user_properties)
    assert json.loads(props[CAUSE_PROPERTY]) == [
        "stale-flannel-arp@lab-node-1",
        "vxlan-port-blocked",
        "mtu-mismatch@lab-node-2",
    ]
    assert json.loads(props[FINDINGS_PROPERTY]) == [
        {"cause": "stale-flannel-arp", "node": "lab-node-1", "title": "stale entry", "fix": "ip neigh flush"},
        {"cause": "vxlan-port-blocked", "node": None, "title": "udp 8472 dropped", "fix": None},
        {"cause": "mtu-mismatch", "node": "lab-node-2", "title": "mtu", "fix": None},
    ]
    # what pytest-xdist does with a worker's report: to JSON-able data, through execnet, back
    back = TestReport._from_json(execnet.loads(execnet.dumps(r._to_json())))
    again = Diagnosis.of(back)
    assert again == d
    assert again is not None and again.pcap_bytes() == {"lab-node-1": b"\xd4\xc3\xb2\xa1pcap"}


def test_a_failed_diagnosis_says_so_and_explains_nothing() -> None:
    r = report()
    Diagnosis.failed("ApiException: 403 Forbidden", 0.5).attach(r)
    d = Diagnosis.of(r)
    assert d is not None and d.error == "ApiException: 403 Forbidden" and d.findings == [] and d.causes == []
    assert r.sections == [(SECTION, "diagnosis failed: ApiException: 403 Forbidden\n")]
    assert r.user_properties == []


def test_a_report_without_diagnosis() -> None:
    assert Diagnosis.of(report()) is None
