"""CoreDNS answers, but wrongly: a name the DNS checks ask, asked of each CoreDNS pod directly (from a
node, bypassing the Service), answers other addresses than the API says (the Service's ClusterIPs, the
headless Service's endpoints); the Corefile block that answers it ahead of the kubernetes plugin (hosts,
template, rewrite, a server block for its zone) is named. CoreDNS pods answering differently from each
other (one still on an old Corefile) are named too."""

from __future__ import annotations

from netconform.checks import DNS

from ..evidence import ClusterEvidence
from ..facts import PodFacts
from ..model import Finding, scope
from ..parsers import DnsAnswer, corefile_overrides, is_ip
from ._rule import Rule
from ._util import inspected

CAUSE = "coredns-wrong-answer"
CONFIGMAP = "ConfigMap kube-system/coredns"


def rule(ev: ClusterEvidence) -> list[Finding]:
    out: list[Finding] = []
    pods = {p.ip: p for p in ev.facts.coredns if p.ip}
    for name, want in sorted(ev.facts.dns_expect.items()):
        if not any(is_ip(ip) for ip in want):
            continue  # nothing the API says to compare with
        for qtype in ("a", "aaaa"):
            expected = tuple(sorted(ip for ip in want if is_ip(ip) and (":" in ip) == (qtype == "aaaa")))
            got = _answers(ev, name, qtype)
            if not got or (qtype == "aaaa" and not expected):
                continue
            wrong = {ip: a for ip, (_, a) in got.items() if a.addresses != expected}
            if not wrong:
                continue
            out.append(_finding(ev, name, qtype, expected, got, wrong, pods))
    return out


def _answers(ev: ClusterEvidence, name: str, qtype: str) -> dict[str, tuple[str, DnsAnswer]]:
    """CoreDNS pod IP -> (the node that asked, its answer): the first answer each pod gave any node."""
    got: dict[str, tuple[str, DnsAnswer]] = {}
    for ne, _ in inspected(ev):
        for a in ne.dns_answers:
            if a.name == name and a.qtype == qtype and a.answered and a.server not in got:
                got[a.server] = (ne.node, a)
    return got


def _finding(
    ev: ClusterEvidence,
    name: str,
    qtype: str,
    expected: tuple[str, ...],
    got: dict[str, tuple[str, DnsAnswer]],
    wrong: dict[str, DnsAnswer],
    pods: dict[str, PodFacts],
) -> Finding:
    record = qtype.upper()
    svc = name.split(".", 2)
    api = f"API: {svc[1]}/{svc[0]} must resolve to {', '.join(expected) or 'nothing'} ({record})"

    def pod(ip: str) -> str:
        p = pods.get(ip)
        return f"pod {p.name} on {p.node}" if p else f"CoreDNS {ip}"

    evidence = [
        f"{node}$ nslookup -type={qtype} {name} {ip} ({pod(ip)}): {a.raw or a.status}"
        for ip, (node, a) in sorted(got.items())
    ] + [api]
    blocks = corefile_overrides(ev.facts.corefile, name) if ev.facts.corefile else []
    evidence += [f"{CONFIGMAP} Corefile {b.quote()}" for b in blocks]
    if ev.facts.corefile is None:
        evidence.append(f"{CONFIGMAP}: not readable (the optional netconform-inspect role)")
    answers = {a.addresses for a in wrong.values()}
    forms = _forms(name)
    differ = len(wrong) < len(got) or len(answers) > 1
    answered = ", ".join(sorted({x for a in wrong.values() for x in a.addresses})) or next(iter(wrong.values())).status
    if blocks:
        cut = "; ".join(f"{b.plugin} block, Corefile {b.quote().split(':', 1)[0]}" for b in blocks)
        title = f"CoreDNS answers {name} ({record}) with {answered}, not the API's {', '.join(expected) or 'nothing'}: the Corefile overrides it"
        fix = (
            f"kubectl -n kube-system edit configmap coredns: remove the {cut}; then kubectl -n kube-system "
            "rollout restart deployment coredns (or wait for its reload plugin and cache: about a minute)"
        )
        confidence = 0.9
    elif differ:
        bad = sorted(wrong)
        title = f"CoreDNS pods answer {name} ({record}) differently: {', '.join(pod(ip) for ip in bad)} with {answered}"
        fix = (
            "kubectl -n kube-system delete pod "
            + " ".join(pods[ip].name for ip in bad if ip in pods)
            + (" (the replacement loads the current Corefile)")
        )
        confidence = 0.7
    else:
        title = f"CoreDNS answers {name} ({record}) with {answered}, not the API's {', '.join(expected) or 'nothing'}"
        fix = "compare kube-system/coredns's Corefile (and any file it imports) with the kubernetes plugin's zone"
        confidence = 0.6
    one = [pods[ip].node for ip in wrong if ip in pods] if differ and not blocks else []
    return Finding(
        cause=CAUSE,
        title=title,
        confidence=confidence,
        node=one[0] if len(set(one)) == 1 else None,
        evidence=tuple(evidence),
        fix=fix,
        # the lookups of this name, in every form the checks ask it (short, namespaced, fully qualified)
        explains=(scope(checks=[DNS], targets=forms),),
        detail="the answer comes back: nothing is lost on the way, the content is wrong",
    )


def _forms(name: str) -> list[str]:
    """`svc.ns.svc.cluster.local` and the forms a pod's search list completes to it."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)] + [name + "."]


RULE = Rule(cause=CAUSE, category="CoreDNS answers a name wrongly (Corefile override)", run=rule)
