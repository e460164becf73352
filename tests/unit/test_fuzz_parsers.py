"""Property-based tests (hypothesis), one per parser of what the cluster, a node or the user hands us:
malformed input gives the parser's result or one clean error (ProbeRunError, UsageError, a `rule-error`
finding naming what it read), never a traceback, a RecursionError or a hang.

Each test's docstring names the fuzz case of issue #18 it covers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netconform.diagnose import capture, evidence, iptables, nftables, parsers
from netconform.diagnose.facts_record import facts_from_dict
from netconform.diagnose.rules import run_rules
from netconform.dialing.model import Source, Target
from netconform.dialing.probe import parse_output
from netconform.errors import ProbeRunError, UsageError
from netconform.gate.holds import parse_holder_log
from netconform.kube.connect import resolve_target, version_of
from netconform.kube.inventory import NodeInfo
from netconform.reporting.environment import proxy_mode_from_config

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)


def deep(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


SOURCE = Source("nc-client-a", "10.244.1.5", "n1")
TARGETS = [Target("t1", "tcp", "10.244.2.9", 8080, "pod_to_pod"), Target("t2", "dns", "nc-server", 53, "dns")]


@st.composite
def probe_outputs(draw: st.DrawFn) -> str:
    """The probe's shape with any value anywhere: {"source": ..., "results": [{"id": ..., "attempts": ...}]}."""
    attempt = st.dictionaries(
        st.sampled_from(["ok", "index", "start_ms", "local_port", "connect_ms", "error", "detail", "server_node"]),
        json_values,
    )
    result = st.fixed_dictionaries(
        {"id": st.sampled_from(["t1", "t2"]) | json_values},
        optional={"attempts": st.lists(attempt, max_size=3) | json_values, "addresses": json_values},
    )
    doc = st.fixed_dictionaries(
        {"results": st.lists(result | json_values, max_size=3) | json_values}, optional={"source": json_values}
    )
    return draw(st.one_of(doc.map(json.dumps), st.text(max_size=200)))


@FUZZ
@given(stdout=probe_outputs())
def test_fuzz_probe_output(stdout: str) -> None:
    """Probe output of the wrong JSON shape: a KeyError/TypeError killed the dial thread."""
    try:
        results = parse_output(SOURCE, TARGETS, stdout, 2000)
    except ProbeRunError as exc:
        assert "\n" not in str(exc)
    else:
        assert [r.target_id for r in results] == ["t1", "t2"]


@FUZZ
@given(raw=st.one_of(json_values.map(json.dumps), st.text(max_size=50)))
def test_fuzz_flannel_annotation(raw: str) -> None:
    """A deeply nested flannel backend-data annotation: RecursionError."""
    node = NodeInfo("n1", "192.0.2.1", (), True, True, annotations={"flannel.alpha.coreos.com/backend-data": raw})
    mac = node.flannel_vtep_mac
    assert mac is None or isinstance(mac, str)
    facts = facts_from_dict({"nodes": [{"name": "n1", "annotations": {"flannel.alpha.coreos.com/backend-data": raw}}]})
    assert facts.nodes["n1"].vtep_mac is None or isinstance(facts.nodes["n1"].vtep_mac, str)


@st.composite
def iptables_dumps(draw: st.DrawFn) -> str:
    chains = [f"C{i}" for i in range(draw(st.integers(1, 8)))]
    lines = ["*filter", ":INPUT ACCEPT [0:0]"] + [f":{c} - [0:0]" for c in chains]
    for _ in range(draw(st.integers(0, 30))):
        chain = draw(st.sampled_from(["INPUT", *chains]))
        target = draw(st.sampled_from([*chains, "ACCEPT", "DROP", "RETURN", "MARK --set-xmark 0x1/0x1", "KUBE-X"]))
        match = draw(st.sampled_from(["", "-p tcp ", "-s 10.0.0.0/8 ", "-m mark --mark 0x1/0x1 ", "-i eth+ "]))
        lines.append(f"-A {chain} {match}-j {target}")
    lines += draw(st.lists(st.text(max_size=40), max_size=3)) + ["COMMIT"]
    return "\n".join(lines)


@FUZZ
@given(dump=st.one_of(iptables_dumps(), st.text(max_size=300)))
def test_fuzz_iptables(dump: str) -> None:
    """The iptables walker was exponential in jump depth (depth 18: 2.4 s); any dump walks in bounded time."""
    tables = iptables.parse_iptables_save(dump)
    started = time.monotonic()
    verdict = iptables.evaluate(tables, "filter", "INPUT", iptables.Packet("10.0.0.1", "10.0.0.2", "tcp", 80))
    assert time.monotonic() - started < 1.0 and isinstance(verdict.target, str)


@pytest.mark.parametrize("depth", [18, 32, 200])
def test_iptables_jump_depth_is_linear(depth: int) -> None:
    """Each chain jumps twice to the next one: 2**depth walks before, one per chain now."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]"] + [f":C{i} - [0:0]" for i in range(depth)]
    lines += ["-A INPUT -j C0", "-A INPUT -j C0"]
    for i in range(depth - 1):
        lines += [f"-A C{i} -j C{i + 1}", f"-A C{i} -j C{i + 1}"]
    tables = iptables.parse_iptables_save("\n".join([*lines, "COMMIT"]))
    started = time.monotonic()
    verdict = iptables.evaluate(tables, "filter", "INPUT", iptables.Packet("10.0.0.1", "10.0.0.2", "tcp", 80))
    assert verdict.target == "ACCEPT" and time.monotonic() - started < 0.5


@FUZZ
@given(text=st.one_of(json_values.map(json.dumps), st.text(max_size=200)))
def test_fuzz_nft_ruleset(text: str) -> None:
    """`nft -j list ruleset` output of any shape: a ruleset or its error, one line."""
    rs = nftables.parse_ruleset(text)
    assert rs.error is None or "\n" not in rs.error


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), st.binary(max_size=200).map(lambda b: b"\xd4\xc3\xb2\xa1" + b)))
def test_fuzz_pcap(data: bytes) -> None:
    """Non-pcap bytes handed to the capture analysis: an analysis that says so, no exception."""
    a = capture.analyse(data, {}, 8080, {})
    assert isinstance(a.lines(), list)


@FUZZ
@given(
    conf=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80),
    forged=st.sampled_from(["", f"{evidence.SECTION_MARK} iptables rc=0", f"{evidence.SECTION_MARK} sysctl rc=0"]),
)
def test_fuzz_node_evidence_sections(conf: str, forged: str) -> None:
    """A section marker inside a CNI config file forged the sections after it."""
    script_output = _run_sections({"cni_conf": f"{conf}\n{forged}\nforged-text", "iptables": "*filter\nCOMMIT"})
    sections = evidence.split_sections(script_output)
    assert sections["iptables"].text.splitlines()[0] == "*filter"
    assert set(sections) == {"cni_conf", "iptables"}


def _run_sections(outputs: dict[str, str]) -> str:
    """What the gather script's `sec` prints for these command outputs (the real shell function)."""
    import subprocess

    script = evidence.gather_script().split("\n")
    sec_def = next(line for line in script if line.startswith("sec()"))
    calls = "\n".join(
        f"sec {name} {evidence._sh_quote('printf %s ' + evidence._sh_quote(text))}" for name, text in outputs.items()
    )
    return subprocess.run(
        ["sh", "-c", f"T=''; P=''\n{sec_def}\n{calls}"], capture_output=True, text=True, check=True
    ).stdout


@FUZZ
@given(
    text=st.lists(json_values.map(json.dumps) | st.text(max_size=30), max_size=6).map("\n".join),
)
def test_fuzz_holder_log(text: str) -> None:
    """`probe hold --plan` log lines of any shape: states by target, other lines ignored."""
    states = parse_holder_log(text)
    assert all(isinstance(k, str) for k in states)


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_fuzz_kubeconfig(tmp_path: Path, content: bytes) -> None:
    """A binary or deeply nested kubeconfig: INTERNALERROR, exit 3; now one sentence (exit 4)."""
    path = tmp_path / "kubeconfig"
    path.write_bytes(content)
    try:
        resolve_target(str(path), None, env={})
    except UsageError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(doc=json_values)
def test_fuzz_server_version(doc: Any) -> None:
    """A /version answer missing fields (or not an object): a version string or one sentence."""
    try:
        version = version_of(doc, "https://10.0.0.1:6443")
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(version, str) and version


@FUZZ
@given(text=st.text(max_size=200))
def test_fuzz_kube_proxy_config(text: str) -> None:
    """kube-proxy's config map: its mode or None."""
    mode = proxy_mode_from_config(text)
    assert mode is None or isinstance(mode, str)


TEXT_PARSERS = [
    parsers.parse_ip_link,
    parsers.parse_neigh,
    parsers.parse_fdb,
    parsers.parse_routes,
    parsers.parse_sysctl,
    parsers.parse_conntrack_stats,
    parsers.parse_nstat,
    parsers.parse_env_file,
    parsers.parse_hairpin,
    parsers.parse_addrs,
]


@FUZZ
@given(
    text=st.text(alphabet=st.sampled_from(list("abcdef0123456789:./ \n@<>=-,lnkmtuvxqdevviaprotoscope")), max_size=300),
    which=st.sampled_from(TEXT_PARSERS),
)
def test_fuzz_node_command_output(text: str, which: Any) -> None:
    """`ip`, `bridge`, `sysctl`, `conntrack`, `nstat` output of any shape: parsed, never raised."""
    which(text)


@FUZZ
@given(outputs=st.dictionaries(st.sampled_from([n for n, _ in evidence.SECTIONS]), st.text(max_size=120), max_size=8))
def test_fuzz_rules_over_malformed_evidence(outputs: dict[str, str]) -> None:
    """Every diagnosis rule over garbled node evidence: findings, or a rule-error finding naming the rule."""
    text = "".join(f"{evidence.SECTION_MARK} {name} rc=0\n{body}\n" for name, body in outputs.items())
    node = evidence.NodeEvidence.from_output("n1", text)
    ev = evidence.ClusterEvidence(
        facts_from_dict({"nodes": [{"name": "n1", "internal_ip": "192.0.2.1"}]}), {"n1": node}
    )
    for f in run_rules(ev):
        if f.cause == "rule-error":
            assert f.title.startswith(("rule ", "datapath detection failed")) and "\n" not in f.title


DEEP = 100_000  # far past Python's recursion limit


def test_deeply_nested_inputs_are_one_clean_answer(tmp_path: Path) -> None:
    """The nesting cases: RecursionError before (flannel annotation, probe output, kubeconfig)."""
    node = NodeInfo(
        "n1", "192.0.2.1", (), True, True, annotations={"flannel.alpha.coreos.com/backend-data": deep(DEEP)}
    )
    assert node.flannel_vtep_mac is None
    facts = facts_from_dict(
        {"nodes": [{"name": "n1", "annotations": {"flannel.alpha.coreos.com/backend-data": deep(DEEP, '{"a":', "}")}}]}
    )
    assert facts.nodes["n1"].vtep_mac is None
    with pytest.raises(ProbeRunError, match="output is not JSON"):
        parse_output(SOURCE, TARGETS, deep(DEEP), 2000)
    assert nftables.parse_ruleset("{" + deep(DEEP) + "}").error is not None
    assert parse_holder_log(deep(DEEP, '{"a":', "}")) == {}
    for content in ("a: " + deep(DEEP), "a: " + deep(DEEP, "{", "}"), "\x00\xff binary"):
        path = tmp_path / "kubeconfig"
        path.write_bytes(content.encode("utf-8", "surrogateescape"))
        with pytest.raises(UsageError) as err:
            resolve_target(str(path), None, env={})
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"gitVersion": "v1.31.2"}', "v1.31.2"),
        (b'{"major": "1", "minor": "31"}', "answered /version without a gitVersion"),
        (b"<html>a proxy</html>", "answered /version with something that is not JSON"),
    ],
)
def test_server_version_over_http(body: bytes, said: str) -> None:
    """/version from a real HTTP server: the version, or one sentence that never shows userinfo."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from kubernetes import client as k8s

    from netconform.kube.connect import ClusterTarget, make_api_client, server_version

    class Version(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Version)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        cfg = k8s.Configuration(host=f"http://127.0.0.1:{httpd.server_address[1]}")
        shown = f"http://admin:s3cret@127.0.0.1:{httpd.server_address[1]}"
        target = ClusterTarget(cfg, "lab", "lab")
        try:
            got = server_version(make_api_client(cfg), target)
        except UsageError as exc:
            got = str(exc)
            assert "\n" not in got
        assert said in got
        target.configuration.host = shown  # as a kubeconfig with userinfo gives it: never printed
        if said != "v1.31.2":
            with pytest.raises(UsageError) as err:
                server_version(
                    make_api_client(k8s.Configuration(host=cfg.host)), ClusterTarget(target.configuration, "lab", "lab")
                )
            assert "s3cret" not in str(err.value)
    finally:
        httpd.shutdown()
