"""CoreDNS answering, but wrongly (issue 17 item 1), replayed from the lab (tests/data/recorded/lab/dns_*):
the coredns ConfigMap edited with a `hosts` block for kubernetes.default (dns_hosts) or a `template` for
nc-server in any run namespace (dns_template), then the suite with --diagnose-record. Each CoreDNS pod was
asked directly from every node (section `dns`, busybox nslookup); facts.json holds the Corefile and what
the API says each name resolves to."""

from __future__ import annotations

import dataclasses

import pytest

from netconform.diagnose import correlate
from netconform.diagnose.evidence import ClusterEvidence, Section
from netconform.diagnose.parsers import corefile_overrides, parse_nslookups
from netconform.diagnose.rules import coredns_answer
from netconform.dialing.path import PathInfo

from .test_lab_recorded import load, ranked

KUBERNETES = "kubernetes.default.svc.cluster.local"


def test_nslookup_section_is_read_per_pod_name_and_type() -> None:
    ev, _ = load("dns_hosts")
    answers = parse_nslookups(ev.nodes["lab-node-1"].text("dns"))
    pods = sorted(p.ip for p in ev.facts.coredns if p.ip)
    assert sorted(a.server for a in answers if a.name == KUBERNETES) == pods
    (a,) = [a for a in answers if a.name == KUBERNETES and a.server == pods[0]]
    assert (a.qtype, a.addresses, a.status) == ("a", ("10.96.99.99",), "answered")
    assert a.raw == "Name: kubernetes.default.svc.cluster.local; Address: 10.96.99.99"


def test_nslookup_without_an_answer_is_told_apart_from_nxdomain() -> None:
    # busybox nslookup as run on lab-node-1 (2026-12-03): a name CoreDNS does not have; a pod IP nobody has
    text = (
        "#nc-nslookup a nosuch.default.svc.cluster.local 10.244.1.11\n"
        "Server:\t\t10.244.1.11\nAddress:\t10.244.1.11:53\n\n"
        "** server can't find nosuch.default.svc.cluster.local: NXDOMAIN\n\n"
        "#nc-nslookup a kubernetes.default.svc.cluster.local 10.244.2.250\n"
    )
    nx, gone = parse_nslookups(text)
    assert (nx.status, nx.answered, nx.addresses) == ("NXDOMAIN", True, ())
    assert (gone.status, gone.answered) == ("no answer", False)


@pytest.mark.parametrize(
    ("case", "plugin", "lines"), [("dns_hosts", "hosts", (3, 6)), ("dns_template", "template", (3, 7))]
)
def test_the_corefile_block_answering_the_name_is_found(case: str, plugin: str, lines: tuple[int, int]) -> None:
    ev, _ = load(case)
    assert ev.facts.corefile
    wrong = next(n for n in ev.facts.dns_expect if n.startswith("kubernetes." if plugin == "hosts" else "nc-server."))
    (b,) = corefile_overrides(ev.facts.corefile, wrong)
    assert (b.plugin, b.first, b.last) == (plugin, *lines)
    # the other names the checks ask are answered by the kubernetes plugin: nothing overrides them
    others = [n for n in ev.facts.dns_expect if n != wrong]
    assert others and all(corefile_overrides(ev.facts.corefile, n) == [] for n in others)


@pytest.mark.parametrize(("case", "failures"), [("dns_hosts", 3), ("dns_template", 9)])
def test_wrong_answer_is_the_top_cause_of_every_dns_failure_with_evidence_and_fix(case: str, failures: int) -> None:
    (groups, unexplained), findings = ranked(case)
    assert unexplained == []
    (f,) = findings
    assert (f.cause, f.node) == ("coredns-wrong-answer", None)
    assert groups[0].key == ("coredns-wrong-answer", None) and len(groups[0].failures) == failures
    got = "10.96.99.99" if case == "dns_hosts" else "10.96.99.98"
    pods = [e for e in f.evidence if "$ nslookup -type=a " in e]
    assert len(pods) == 2 and all(e.endswith(f"Address: {got}") for e in pods)
    assert any(e.startswith("API: ") and "must resolve to" in e for e in f.evidence)
    assert any(e.startswith("ConfigMap kube-system/coredns Corefile lines 3-") for e in f.evidence)
    assert f.fix.startswith("kubectl -n kube-system edit configmap coredns: remove the ")


def test_a_wrong_answer_explains_only_the_lookups_of_that_name() -> None:
    ev, paths = load("dns_template")
    (f,) = coredns_answer.rule(ev)
    fqdn = next(n for n in ev.facts.dns_expect if n.startswith("nc-server."))
    short, ns = fqdn.split(".")[:2]
    for target in (short, f"{short}.{ns}", fqdn):
        p = PathInfo(check="dns", src_node="lab-node-1", target=target, error="dns")
        assert correlate.explains(f, p, ev.facts), target
    other = PathInfo(check="dns", src_node="lab-node-1", target="kubernetes.default", error="dns")
    assert not correlate.explains(f, other, ev.facts)


def _one_pod_answers(ev: ClusterEvidence, name: str, server: str, old: str, new: str) -> None:
    """Every node's recorded `dns` section with one pod's answer for `name` changed (an old Corefile there)."""
    for ne in ev.nodes.values():
        s = ne.sections["dns"]
        head = f"#nc-nslookup a {name} {server}\n"
        before, _, rest = s.text.partition(head)
        block, sep, after = rest.partition("#nc-nslookup")
        assert f"Address: {old}" in block
        text = before + head + block.replace(f"Address: {old}", f"Address: {new}") + sep + after
        ne.sections["dns"] = Section("dns", s.rc, text)
        ne.__dict__.pop("dns_answers", None)


def test_coredns_pods_answering_differently_name_the_odd_pod_and_its_node() -> None:
    # dns_hosts with the block gone from the Corefile and one pod still answering the hosts entry:
    # a pod that did not reload (the other answers what the API says)
    ev, _ = load("dns_hosts")
    ev.facts.corefile = ev.facts.corefile and "\n".join(
        x for i, x in enumerate(ev.facts.corefile.splitlines(), 1) if not 3 <= i <= 6
    )
    pods = sorted((p for p in ev.facts.coredns if p.ip), key=lambda p: p.ip or "")
    _one_pod_answers(ev, KUBERNETES, pods[1].ip or "", "10.96.99.99", "10.96.0.1")
    (f,) = coredns_answer.rule(ev)
    assert f.node == pods[0].node
    assert f.title.startswith(f"CoreDNS pods answer {KUBERNETES} (A) differently: pod {pods[0].name} on {pods[0].node}")
    assert f.fix.startswith(f"kubectl -n kube-system delete pod {pods[0].name} ")


def test_headless_expectation_is_the_server_pods_and_their_answers_match() -> None:
    # dns_hosts_again (the same hosts block, recorded after nc-headless's endpoints were read): the API's
    # answer for the headless name is the server pods, what every CoreDNS pod answered; only the hosts
    # entry's name is wrong
    ev, _ = load("dns_hosts_again")
    headless = next(n for n in ev.facts.dns_expect if n.startswith("nc-headless."))
    server = next(s for s in ev.facts.services.values() if s.name == "nc-server")
    assert ev.facts.dns_expect[headless] == tuple(sorted(e.ip for e in server.ready_endpoints))
    (f,) = coredns_answer.rule(ev)
    assert KUBERNETES in f.title and headless not in f.title
    # the older recordings hold its clusterIP, the word "None": nothing to compare with, skipped
    old, _ = load("dns_hosts")
    old_headless = next(n for n in old.facts.dns_expect if n.startswith("nc-headless."))
    assert old.facts.dns_expect[old_headless] == ("None",)
    assert [x.title for x in coredns_answer.rule(old) if old_headless in x.title] == []
    assert dataclasses.replace(server, cluster_ips=("None",)).all_cluster_ips == (server.cluster_ip,)


def test_gather_asks_each_coredns_pod_each_name_and_quotes_nothing_it_was_not_given() -> None:
    from netconform.diagnose.evidence import gather_script

    ev, _ = load("dns_hosts")
    queries = ev.facts.dns_queries()
    assert len(queries) == 2 * len(ev.facts.dns_expect)  # two CoreDNS pods, IPv4 only
    script = gather_script(dns_queries=queries)
    for name, ip, t in queries:
        assert f"timeout 2 nslookup -type={t} {name} {ip}" in script
    # a name or an address that is not one is never put into the script
    bad = gather_script(dns_queries=[("x;reboot", "10.0.0.1", "a"), ("ok.example", "10.0.0.1; reboot", "a")])
    assert "reboot" not in bad and "sec dns" not in bad
