"""Node access: option parsing, agent manifest, bounded commands (local testinfra backend)."""

import sys

import pytest
import testinfra

from netconform import nodes
from netconform.errors import UsageError
from netconform.kube.exec import ExecError, ExecResult
from netconform.nodes import backend
from netconform.workload.manifests import agent_daemonset


def test_parse_node_access():
    assert nodes.parse_node_access("agent").kind == "agent"
    spec = nodes.parse_node_access("ssh://core@{node}")
    assert spec.kind == "ssh" and spec.hostspec("lab-node-2", "192.0.2.12") == "ssh://core@lab-node-2"
    assert nodes.parse_node_access("ssh://root@{ip}").hostspec("n", "192.0.2.12") == "ssh://root@192.0.2.12"
    for bad in ("ssh://core@host", "ftp://{node}", "kubectl"):
        with pytest.raises(UsageError):
            nodes.parse_node_access(bad)


@pytest.mark.parametrize(
    ("node", "ip"),
    [
        ("-oProxyCommand=touch /tmp/pwned", None),  # an ssh option
        ("--privileged", None),  # a docker option
        ("n1?ssh_config=/tmp/evil", None),  # a testinfra URL query
        ("evil@attacker.example", None),  # another user@host
        ("Node-1", None),  # Kubernetes itself refuses upper case
        ("a" * 254, None),
        ("n1", "-oProxyCommand=x"),
        ("n1", "192.0.2.1?ssh_config=/x"),
        ("n1", "not-an-ip"),
    ],
)
def test_node_names_and_addresses_are_checked_before_they_reach_a_url(node: str, ip: str | None) -> None:
    for template in ("ssh://core@{node}", "ssh://core@{ip}", "docker://{node}"):
        with pytest.raises(nodes.AccessError) as err:
            nodes.parse_node_access(template).hostspec(node, ip)
        assert "\n" not in str(err.value) and "not put into a node access URL" in str(err.value)


def test_valid_names_and_addresses_go_in_canonical():
    spec = nodes.parse_node_access("ssh://root@{ip}")
    assert spec.hostspec("ip-10-0-0-1.eu-west-1.compute.internal", "fd00:0:0::1") == "ssh://root@fd00::1"
    assert nodes.parse_node_access("docker://{node}").hostspec("lab-node-2", None) == "docker://lab-node-2"
    hosts = nodes.NodeHosts(nodes.parse_node_access("docker://{node}"))
    with pytest.raises(nodes.AccessError, match="RFC 1123"):
        hosts.run("--privileged", "true")  # refused before any docker command


def test_agent_manifest_shape():
    m = agent_daemonset("netconform-ab12", "reg.local/netshoot:v0.13", ["lab-node-1", "lab-node-2"])
    spec = m["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert m["metadata"]["name"] == "nc-agent" and m["metadata"]["namespace"] == "netconform-ab12"
    assert spec["hostNetwork"] and spec["hostPID"] and c["securityContext"]["privileged"]
    assert c["command"] == ["sleep", "infinity"] and c["image"] == "reg.local/netshoot:v0.13"
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    # one term per node: the API refuses (422) a matchFields requirement with more than one value
    assert [t["matchFields"][0]["values"] for t in terms] == [["lab-node-1"], ["lab-node-2"]]
    assert all(v["readOnly"] for v in c["volumeMounts"])


def test_run_bounded_times_out_inside_the_node():
    host = testinfra.get_host("local://")
    res = nodes.run_bounded(host, "sleep 5; echo late", timeout_s=1)
    assert res.rc == 124 and "late" not in res.stdout


def test_run_bounded_returns_output():
    res = nodes.run_bounded(testinfra.get_host("local://"), "echo hi; exit 3", timeout_s=5)
    assert res.rc == 3 and res.stdout == "hi\n"


def test_unreachable_ssh_is_an_access_error():
    hosts = nodes.NodeHosts(nodes.parse_node_access("ssh://nobody@{node}?timeout=2"))
    with pytest.raises(nodes.AccessError):
        # .invalid never resolves: fails fast, no traffic leaves the machine
        hosts.run("node.invalid", "true", timeout_s=5)


def test_access_none_refuses_politely():
    with pytest.raises(nodes.AccessError, match="--node-access none"):
        nodes.NodeHosts(nodes.parse_node_access("none")).run("lab-node-1", "true")


def test_a_bad_node_access_is_a_usage_error_of_the_run(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x(): pass")
    res = pytester.runpytest("-p", "no:netconform", "-p", "netconform.plugin.nodes", "--node-access", "ftp://{node}")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "--node-access 'ftp://{node}': unknown scheme 'ftp'" in res.stderr.str()


def test_the_agent_backend_is_one_pod_exec_and_a_failed_exec_is_an_access_error(monkeypatch: pytest.MonkeyPatch):
    calls = []

    def run_in_pod(cfg, namespace, pod, command, *, container=None, stdin=None, timeout_s):
        calls.append((namespace, pod, command, container, timeout_s))
        if "fail" in command[-1]:
            raise ExecError(f"exec into {namespace}/{pod} failed: 500 Internal Server Error")
        return ExecResult(3, "out\n", "err\n")

    monkeypatch.setattr(backend, "run_in_pod", run_in_pod)
    be = nodes.ExecBackend("nc-agent-x", "netconform-ab12", "agent", None)
    res = nodes.run_bounded(be, "ip route show", timeout_s=7)
    assert (res.rc, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert calls == [("netconform-ab12", "nc-agent-x", ["/bin/sh", "-c", "ip route show"], "agent", 7)]
    with pytest.raises(nodes.AccessError, match="exec into netconform-ab12/nc-agent-x failed: 500"):
        be.run_with_timeout("fail", 5)


def without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """As if the extra that brings `modules` were not installed (an import of them raises ImportError)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_ssh_and_docker_access_need_the_node_access_extra_and_say_so(monkeypatch: pytest.MonkeyPatch):
    without(monkeypatch, "testinfra", "testinfra.backend", "testinfra.host")
    with pytest.raises(UsageError) as refused:
        nodes.parse_node_access("ssh://core@{node}")
    assert str(refused.value) == (
        "--node-access 'ssh://core@{node}' needs pytest-testinfra, which is not installed: "
        "pip install 'netconform[node-access]'"
    )
    hosts = nodes.NodeHosts(nodes.AccessSpec("docker", "docker://{node}"))
    with pytest.raises(nodes.AccessError, match=r"needs pytest-testinfra, .*'netconform\[node-access\]'"):
        hosts.run("lab-node-1", "true")
    assert nodes.parse_node_access("agent").kind == "agent"  # the default needs no testinfra


def test_the_agent_needs_no_testinfra(monkeypatch: pytest.MonkeyPatch):
    without(monkeypatch, "testinfra", "testinfra.backend", "testinfra.host")
    monkeypatch.setattr(backend, "run_in_pod", lambda *a, **k: ExecResult(0, "ok\n", ""))
    be = nodes.ExecBackend("nc-agent-x", "netconform-ab12", "agent", None)
    assert nodes.run_bounded(be, "true").stdout == "ok\n"


def test_capture_needs_the_capture_extra_and_says_so_before_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    without(monkeypatch, "scapy")
    pytester.makepyfile("def test_x(): pass")
    res = pytester.runpytest(
        "-p", "no:netconform", "-p", "netconform.plugin.nodes", "-p", "netconform.plugin.diagnose", "--capture-pcap"
    )
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "netconform: --capture-pcap needs scapy, which is not installed: pip install 'netconform[capture]'"
        in res.stderr.str()
    )
