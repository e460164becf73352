"""The probe workload of a run: its options, the leftover sweep, the `probes` fixture (deployed once
per run, whichever xdist worker needs it first), teardown on the controller, and the API-request and
exec counts of the run."""

from __future__ import annotations

import json
import shutil
import sys
import time
from argparse import ArgumentTypeError
from pathlib import Path
from typing import Any

import pytest

from netconform.dialing.settle import wait_programmed
from netconform.errors import API_ERRORS, ProbeSetupError, api_error_sentence
from netconform.kube.connect import request_counts
from netconform.kube.inventory import NodeInfo, cluster_families
from netconform.plugin import session as cl
from netconform.plugin.options import duration_in, duration_s
from netconform.plugin.session import Cluster
from netconform.plugin.shared import fail_run, once_per_run, shared_dir
from netconform.workload.deploy import Deployment, DeployRequest, deploy
from netconform.workload.images import DEFAULT_IMAGES, image_ref
from netconform.workload.labels import namespace_name
from netconform.workload.namespace import NAMESPACE_GONE_WAIT_S, delete_namespace, sweep

_SWEPT = pytest.StashKey[list[str]]()
_DELETE_ISSUED = pytest.StashKey[float]()  # time.monotonic() of the delete issued on SIGTERM
# Another machine's run cannot be asked whether it still runs: only its age tells, so a sweep age
# shorter than a long run would delete a live run's namespace under it.
MIN_SWEEP_AGE = "10m"


def _sweep_age(text: str) -> float:
    seconds = duration_s(text)
    if seconds < duration_s(MIN_SWEEP_AGE):
        raise ArgumentTypeError(
            f"{text!r} is shorter than {MIN_SWEEP_AGE}: a live run elsewhere could lose its namespace"
        )
    return seconds


_CALLS = pytest.StashKey[dict[str, int]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform", "netconform: which cluster and nodes")
    group.addoption(
        "--image-repo",
        metavar="REPO",
        help="pull every netconform image from REPO (e.g. registry.local/mirror) instead of its public registry",
    )
    group.addoption("--probe-image", metavar="REF", help=f"probe image (default {DEFAULT_IMAGES['probe']})")
    group.addoption("--agent-image", metavar="REF", help=f"node agent image (default {DEFAULT_IMAGES['agent']})")
    group.addoption("--keep", action="store_true", help="leave the run namespace and its probes in place")
    group.addoption(
        "--wait-cleanup",
        action="store_true",
        help="wait (up to 60s) until the run namespace is gone before exiting; by default the delete is "
        "issued and the run ends (the next run's sweep reports a namespace that did not go)",
    )
    group.addoption(
        "--sweep-age",
        metavar="AGE",
        type=_sweep_age,
        default="1h",
        help="remove another machine's leftover run namespaces older than AGE, at least "
        f"{MIN_SWEEP_AGE}, e.g. 30m, 2h (default 1h); a run of this machine is removed once its "
        "pytest process is gone, a kept one (--keep) never",
    )
    group.addoption(
        "--ready-timeout",
        metavar="DURATION",
        type=duration_in(1.0, 3600.0),
        default="120s",
        help="how long to wait for the probes to become Ready, 1s..1h, e.g. 90s, 5m (default 120s)",
    )
    group.addoption(
        "--cluster-domain",
        metavar="DOMAIN",
        default="cluster.local",
        help="cluster DNS domain for FQDN checks (default cluster.local)",
    )


def _deploy_request(config: pytest.Config, cluster: Cluster, network_policy: bool) -> DeployRequest:
    ns = namespace_name(cl.run_id(config))
    extra = config.hook.pytest_netconform_extra_manifests(config=config, namespace=ns, nodes=cluster.nodes)
    return DeployRequest(
        run_id=cl.run_id(config),
        node_names=[n.name for n in cluster.nodes],
        probe_image=images(config)["probe"],
        keep=config.getoption("keep"),
        ready_timeout_s=config.getoption("ready_timeout"),
        cluster_domain=config.getoption("cluster_domain"),
        extra_manifests=[m for result in extra if result for m in result],
        progress=lambda line: _say(config, line),
        settle_s=0.0,  # kube-proxy is confirmed on the datapath instead (_deploy_shared)
        network_policy=network_policy,
    )


def images(config: pytest.Config) -> dict[str, str]:
    repo = config.getoption("image_repo")
    return {
        "probe": image_ref(DEFAULT_IMAGES["probe"], repo, config.getoption("probe_image")),
        "agent": image_ref(DEFAULT_IMAGES["agent"], repo, config.getoption("agent_image")),
    }


class NetconformHookspecs:
    @pytest.hookspec
    def pytest_netconform_extra_manifests(self, config: pytest.Config, namespace: str, nodes: list[NodeInfo]) -> Any:
        """Return manifests (dicts) to create in the run namespace next to the probes (e.g. the node agent).

        They are created once with the probes and removed with the namespace; netconform does not wait for them.
        """


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(NetconformHookspecs)


def _deploy_shared(config: pytest.Config, cluster: Cluster, network_policy: bool) -> dict[str, Any]:
    """Deploy, then wait (bounded) until every client pod sees every Service programmed by kube-proxy."""
    try:
        dep = deploy(cluster.api_client, _deploy_request(config, cluster, network_policy))
    except ProbeSetupError as exc:
        return {"error": str(exc)}
    for node, why in dep.unusable.items():  # the run goes on without it; its tests fail with this
        _say(config, f"the probe pods on {node} never became Ready, its tests fail: {why}")
    settled = wait_programmed(
        cluster.configuration, dep, cluster_families(cluster.nodes), nodes={n.name: n for n in cluster.nodes}
    )
    dep.settle_s, dep.settle_execs, dep.settle_note = settled.seconds, settled.execs, settled.note()
    dep.seconds = round(dep.seconds + settled.seconds, 2)
    if dep.settle_note:
        _say(config, dep.settle_note)
    return dep.to_dict()


@pytest.fixture(scope="session")
def probes(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Deployment:
    """The probe workload of this run (deployed by whichever process needs it first)."""
    run = cl.run_id(pytestconfig)
    data = once_per_run(
        shared_dir(tmp_path_factory, run),
        "deployment",
        lambda: _deploy_shared(pytestconfig, cluster, _uses_network_policy(request.session.items)),
        wait_s=pytestconfig.getoption("ready_timeout") + 120,
        what="deploying the probes",
    )
    if "error" in data:
        fail_run(request, data["error"])
    return Deployment.from_dict(data)


def _uses_network_policy(items: list[pytest.Item]) -> bool:
    """The NetworkPolicy check is selected (its pods are deployed only then). Every xdist worker
    collects the same selection, so whichever deploys decides the same."""
    return any("network_policy" in getattr(item, "fixturenames", ()) for item in items)


@pytest.fixture(scope="session")
def probe_namespace(probes: Deployment) -> str:
    """Name of the run namespace, with the probes deployed and Ready."""
    return probes.namespace


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not (cl.is_active(config) and cl.is_controller(config)) or config.option.collectonly:
        return  # --collect-only reads, never writes: no sweep
    if not config.getoption("keep"):
        core, ns = cl.get_cluster(config).core, namespace_name(cl.run_id(config))

        def delete_now() -> None:
            config.stash[_DELETE_ISSUED] = time.monotonic()
            delete_namespace(core, ns, wait_s=0.0)

        cl.on_sigterm(config, delete_now)
    try:
        config.stash[_SWEPT] = sweep(cl.get_cluster(config).core, cl.run_id(config), config.getoption("sweep_age"))
    except API_ERRORS as exc:
        config.stash[_SWEPT] = [f"could not sweep leftovers: {api_error_sentence(exc, 'list namespaces')}"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"netconform: {line}" for line in config.stash.get(_SWEPT, [])]


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not cl.is_active(config):
        return
    if not cl.is_controller(config):
        config.workeroutput["netconform_calls"] = _own_calls()  # type: ignore[attr-defined]
        return
    ns = namespace_name(cl.run_id(config))
    timings = _timings_and_forget(config, ns)
    if timings:
        _say(config, timings)
    if config.getoption("keep"):
        said: str | None = f"kept namespace {ns} (--keep); remove it with: kubectl delete namespace {ns}"
    else:
        wait_s = NAMESPACE_GONE_WAIT_S if config.getoption("wait_cleanup") else 0.0
        said = delete_namespace(cl.get_cluster(config).core, ns, wait_s, config.stash.get(_DELETE_ISSUED, None))
    if said:
        _say(config, said)
    totals = config.stash.setdefault(_CALLS, {"api": 0, "exec": 0})
    for key, value in _own_calls().items():
        totals[key] += value


def _timings_and_forget(config: pytest.Config, ns: str) -> str | None:
    """Read how long setup and the fan-out took from the run's shared files, then remove them.

    Workers share the parent of their basetemp, which is the controller's own basetemp; without
    xdist it is the parent of the controller's basetemp.
    """
    basetemp = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    parts = []
    for directory in (basetemp / ns, basetemp.parent / ns):
        for key, words in (("deployment", "probes Ready in"), ("dials", "dial fan-out")):
            try:
                data = json.loads((directory / f"{key}.json").read_text())
            except (OSError, ValueError):
                continue
            if data.get("seconds") is None:
                continue
            settled, execs = data.get("settle_s"), data.get("settle_execs", 0)
            of_which = (
                f" (of which {settled:.1f}s and {execs} probe execs until every client pod saw every Service programmed)"
                if settled
                else ""
            )
            parts.append(f"{words} {data['seconds']:.1f}s{of_which}")
        parts += _policy_timing(directory)
        shutil.rmtree(directory, ignore_errors=True)
    return ", ".join(parts) or None


def _policy_timing(directory: Path) -> list[str]:
    """How the NetworkPolicy check's rounds went (netconform.dialing.policy), if this run made them."""
    try:
        data = json.loads((directory / "network-policy.json").read_text())
        state = "in effect" if data["in_effect"] else "not in effect"
        return [f"NetworkPolicy {state} after {data['waited_s']:.1f}s ({data['rounds']} rounds)"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _own_calls() -> dict[str, int]:
    return request_counts()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: add each worker's API call counts to the controller's."""
    calls = getattr(node, "workeroutput", {}).get("netconform_calls")
    if calls:
        totals = node.config.stash.setdefault(_CALLS, {"api": 0, "exec": 0})
        for key, value in calls.items():
            totals[key] += value


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if cl.is_active(config) and cl.is_controller(config):
        calls = config.stash.get(_CALLS, None)
        if calls:
            terminalreporter.write_line(f"netconform: {calls['api']} API requests, {calls['exec']} probe execs")


def _say(config: pytest.Config, line: str) -> None:
    """A line on the terminal; from an xdist worker (no terminal of its own) on stderr."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and cl.is_controller(config):
        reporter.write_line(f"netconform: {line}")
    else:
        print(f"netconform: {line}", file=sys.stderr, flush=True)
