"""The one fan-out of a run and the suites' view of it: options, the `dials`, `src` and `host_dials`
fixtures, and the parametrization of suite tests from the node inventory.

A suite test names what it checks through its arguments and one marker:
`src` (a client pod, one case per node), `dst` (a node), `family` (one case per IP family of the
cluster: "ipv4", "ipv6"; the test id starts with it), and for tests taking both src and dst,
`@pytest.mark.pairs("same-node" | "cross-node" | "all")`. Renaming a test changes nothing it covers.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client as k8s

from netconform.checks import check_of
from netconform.dialing.fanout import dial_all
from netconform.dialing.host import HostDials, dial_nodeports_from_host
from netconform.dialing.model import DialResult, Source, SourceOutcome, Target
from netconform.dialing.pairs import ALL_PAIRS_UP_TO, MODES, PairChoice, choose_pairs
from netconform.dialing.path import PODS_NOT_STARTED, PathInfo
from netconform.dialing.plan import Gap, plan_with_gaps
from netconform.dialing.probe import worst_case_seconds
from netconform.kube.inventory import NodeInfo, cluster_families, family_of
from netconform.plugin import paths
from netconform.plugin.options import duration_in, int_in, positive_int
from netconform.plugin.session import Cluster, is_active, run_id, selected_nodes
from netconform.plugin.shared import fail_run, once_per_run, shared_dir
from netconform.workload.deploy import Deployment
from netconform.workload.readiness import PodRef

PAIR_KINDS = ("same-node", "cross-node", "all")
IN_CLUSTER = "netconform runs inside the cluster (a pod): it has no vantage point outside it to dial NodePorts from"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform", "netconform: which cluster and nodes")
    group.addoption(
        "--dial-timeout",
        metavar="DURATION",
        type=duration_in(0.001, 60.0),
        default="2s",
        help="timeout of one connection attempt or DNS lookup, 1ms..60s (what the probe takes), e.g. 2s, 500ms "
        "(default 2s)",
    )
    group.addoption(
        "--pairs",
        choices=MODES,
        default="auto",
        help=f"cross-node pairs to check: all, ring (each node to its next --pairs-per-node by name), sample "
        f"(the same over a seeded shuffle, new peers each run); auto = all up to {ALL_PAIRS_UP_TO} nodes, else sample",
    )
    group.addoption(
        "--pairs-per-node",
        metavar="K",
        type=positive_int,
        default=4,
        help="ring/sample: every node is a source and a destination at least K times, 1 or more "
        "(at most every other node; default 4)",
    )
    group.addoption("--pairs-seed", metavar="N", type=int, help="sample: repeat the pairs of an earlier run")
    group.addoption(
        "--stability-count",
        metavar="N",
        type=int_in(1, 100_000),
        default=100,
        help="consecutive new connections per stability check, 1..100000 (default 100)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pairs(kind): which (src, dst) node pairs a suite test checks: same-node, cross-node or all"
    )
    given = config.getoption("pairs_seed")
    handed = getattr(config, "workerinput", {}).get("netconform_pairs_seed")
    config.stash[_SEED] = given if given is not None else handed if handed is not None else secrets.randbelow(10**6)


_SEED = pytest.StashKey[int]()
_PAIRS = pytest.StashKey[PairChoice]()


def pair_choice(config: pytest.Config) -> PairChoice:
    """The cross-node pairs of this run: the same in every xdist worker (the controller's seed)."""
    if _PAIRS not in config.stash:
        nodes = selected_nodes(config)
        config.stash[_PAIRS] = choose_pairs(
            [n.name for n in nodes],
            config.getoption("pairs"),
            config.getoption("pairs_per_node"),
            config.stash[_SEED],
            {n.name: n.labels for n in nodes},
        )
    return config.stash[_PAIRS]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker samples the same pairs."""
    node.workerinput["netconform_pairs_seed"] = node.config.stash[_SEED]


def pytest_report_header(config: pytest.Config) -> list[str]:
    nodes = selected_nodes(config) if is_active(config) else []
    return [f"netconform: {pair_choice(config).describe(len(nodes))}"] if len(nodes) > 1 else []


# ---------------------------------------------------------------- the fan-out, once per run


@dataclass
class DialBook:
    """Every client pod's outcome, by node name, computed once per run; `gaps` (not shared: every
    process plans the same) says why a (source node, target id) was not dialed."""

    outcomes: dict[str, SourceOutcome]
    seconds: float
    gaps: dict[tuple[str, str], Gap] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"outcomes": {n: o.to_dict() for n, o in self.outcomes.items()}, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DialBook:
        return cls({n: SourceOutcome.from_dict(o) for n, o in data["outcomes"].items()}, data["seconds"])


def _dial_everything(
    configuration: k8s.Configuration, namespace: str, plan: dict[Source, list[Target]], timeout_ms: int
) -> dict[str, Any]:
    started = time.monotonic()
    outcomes = dial_all(configuration, namespace, plan, timeout_ms)
    return DialBook({o.source.node: o for o in outcomes}, round(time.monotonic() - started, 3)).to_dict()


@pytest.fixture(scope="session")
def dials(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    cluster: Cluster,
    probes: Deployment,
    tmp_path_factory: pytest.TempPathFactory,
) -> DialBook:
    """The one fan-out of the run: every client pod dials every target; tests assert on their slice."""
    timeout_ms = int(pytestconfig.getoption("dial_timeout") * 1000)
    plan, gaps = plan_with_gaps(
        probes, cluster.nodes, pytestconfig.getoption("stability_count"), pair_choice(pytestconfig)
    )
    # the NodePort dials from this machine (their eTP=Local silence checks wait out a dial timeout) run
    # meanwhile, if a test of this process uses them; the _host_dials fixture reads their result,
    # waiting for it under the same file lock
    if cluster.context != "in-cluster" and _uses_host_dials(request.session.items):
        args = (pytestconfig, cluster, probes, tmp_path_factory)
        threading.Thread(target=_host_dials_ahead, args=args, name="host-dials", daemon=True).start()
    # other workers wait for the first one's fan-out: at most two exec tries, each bounded by the worst case
    worst = max(worst_case_seconds(t, timeout_ms) for t in plan.values()) * 2 + 60
    data = once_per_run(
        shared_dir(tmp_path_factory, run_id(pytestconfig)),
        "dials",
        lambda: _dial_everything(cluster.configuration, probes.namespace, plan, timeout_ms),
        wait_s=worst,
        what="dialing from every client pod",
    )
    if "error" in data:
        fail_run(request, data["error"])
    book = DialBook.from_dict(data)
    book.gaps = gaps
    return book


# ---------------------------------------------------------------- what a test sees


class SourceView:
    """A test's view of one client pod's results. Each result it hands out is recorded, with it, as
    the path the test checked (netconform.plugin.paths), so diagnosis and reporting see both."""

    def __init__(
        self,
        outcome: SourceOutcome,
        node: NodeInfo,
        item: pytest.Item,
        gaps: dict[tuple[str, str], Gap] | None = None,
        pod: PodRef | None = None,
        unusable: str = "",
    ) -> None:
        self.outcome, self.node, self._item = outcome, node, item
        self._by_id = {r.target_id: r for r in outcome.results}
        self._gaps = gaps or {}
        self._pod = pod
        self._unusable = unusable  # why this node has no probe pods: each result fails with it

    @property
    def pod(self) -> str:
        return self.outcome.source.pod

    @property
    def ip(self) -> str:
        return self.outcome.source.ip

    def ip_of(self, family: str) -> str | None:
        """This pod's address of `family` ("ipv4" | "ipv6")."""
        return self._pod.ip_of(family) if self._pod else (self.ip if family_of(self.ip) == family else None)

    def result(self, target_id: str, check: str | None = None, *, record: bool = True) -> DialResult:
        """The result of `target_id` from this pod, recorded as the test's path (unless `record` is False).
        A path the plan could not dial fails or skips the test with the reason (netconform.dialing.plan.Gap)."""
        if self._unusable:  # diagnosed on this node: why its pods do not start
            self._record_not_started(check, None)
            pytest.fail(f"the probe pods on {self.node.name} never became Ready: {self._unusable}", pytrace=False)
        result = self._by_id.get(target_id)
        if result is None:
            gap = self._gaps.get((self.node.name, target_id))
            if gap is None:
                pytest.fail(f"netconform: {self.pod} ({self.node.name}) did not dial {target_id}", pytrace=False)
            if gap.node:
                self._record_not_started(check, gap.node)
            if gap.fail:
                pytest.fail(f"{self.pod} ({self.node.name}) -> {target_id}: {gap.reason}", pytrace=False)
            pytest.skip(gap.reason)
        if record:
            paths.record(self._item, result.path_info(check, self.outcome.results))
        return result

    def _record_not_started(self, check: str | None, dst_node: str | None) -> None:
        module = getattr(self._item, "module", None)
        check_name = check or check_of(module.__name__ if module else "")
        paths.record(self._item, PathInfo(check_name, self.node.name, dst_node, error=PODS_NOT_STARTED))

    def __repr__(self) -> str:
        return f"{self.pod} ({self.ip}, {self.node.name})"


@pytest.fixture
def src(request: pytest.FixtureRequest, dials: DialBook, cluster: Cluster, probes: Deployment) -> SourceView:
    """The client pod on the node named by the indirect parameter, with its dial results.

    If the probe could not be run there, the test errors (not fails): that is no network verdict. If the
    node's probe pods never became Ready (a broken CNI, an image that does not pull), the test fails
    with that reason: the node cannot run pods, which is the node's fault.
    """
    node = cluster.node(request.param)
    outcome = dials.outcomes.get(node.name)
    if outcome is None and node.name in probes.unusable:  # the test fails when it asks for a result
        return SourceView(
            SourceOutcome(Source("", "", node.name)), node, request.node, unusable=probes.unusable[node.name]
        )
    if outcome is None:
        pytest.fail(f"netconform: no client pod on {node.name}", pytrace=False)
    if outcome.error:
        paths.record(request.node, PathInfo(check_of(request.module.__name__), node.name, error="probe_not_run"))
        pytest.fail(
            f"could not run the probe in {outcome.source.pod} ({node.name}): {outcome.error} (tried {outcome.tries}x)",
            pytrace=False,
        )
    return SourceView(outcome, node, request.node, dials.gaps, probes.clients.get(node.name))


class HostView:
    """A test's view of the NodePort dials made from this machine; records the path like SourceView."""

    def __init__(self, dials: HostDials | None, item: pytest.Item, unusable: dict[str, str] | None = None) -> None:
        self.dials, self._item = dials, item
        self._unusable = unusable or {}

    def result(self, dst: NodeInfo, target_id: str) -> DialResult:
        """The dial of `target_id` on `dst`; skips the test when this machine cannot reach `dst` at all."""
        if self.dials is None:
            pytest.skip(IN_CLUSTER)
        if dst.name in self._unusable:  # no local backend there: its NodePorts cannot answer as checked
            pytest.fail(f"the probe pods on {dst.name} never became Ready: {self._unusable[dst.name]}", pytrace=False)
        if target_id in self.dials.skip:
            pytest.skip(self.dials.skip[target_id])
        results = self.dials.results[dst.name]
        result = next(r for r in results if r.target_id == target_id)
        paths.record(self._item, result.path_info(others=results))
        return result


@pytest.fixture(scope="session")
def _host_dials(
    pytestconfig: pytest.Config, cluster: Cluster, probes: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> HostDials | None:
    if cluster.context == "in-cluster":
        return None  # a pod reaches node IPs through kube-proxy's short-circuit: no outside vantage point
    return HostDials.from_dict(_host_dials_once(pytestconfig, cluster, probes, tmp_path_factory))


def _uses_host_dials(items: list[pytest.Item]) -> bool:
    return any("host_dials" in getattr(item, "fixturenames", ()) for item in items)


def _host_dials_ahead(*args: Any) -> None:
    """_host_dials_once in the background: an error is not reported here but where the result is read
    (the fixture then dials itself and fails as it always did)."""
    with contextlib.suppress(Exception):  # see the docstring
        _host_dials_once(*args)


def _host_dials_once(
    pytestconfig: pytest.Config, cluster: Cluster, probes: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The NodePort dials from this machine, once per run: started beside the fan-out by `dials`, read
    by `_host_dials` (the first caller dials under the run's file lock, later ones read its result)."""
    timeout_s = pytestconfig.getoption("dial_timeout")
    return once_per_run(
        shared_dir(tmp_path_factory, run_id(pytestconfig)),
        "host-dials",
        lambda: dial_nodeports_from_host(
            probes, [n for n in cluster.nodes if n.name not in probes.unusable], timeout_s
        ).to_dict(),
        # per node and family: the kubelet-port check and three NodePorts, 16 at a time
        wait_s=timeout_s * 4 * len(cluster.nodes) * len(cluster_families(cluster.nodes)) + 60,
        what="dialing NodePorts from this machine",
    )


@pytest.fixture
def host_dials(request: pytest.FixtureRequest, _host_dials: HostDials | None, probes: Deployment) -> HostView:
    """NodePort of every node dialed from this machine (once per run, shared with xdist workers)."""
    return HostView(_host_dials, request.node, probes.unusable)


# ---------------------------------------------------------------- parametrization of suite tests


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`src`, `dst` and `family` from the node inventory; tests taking src and dst name their pair kind
    with a marker. Ids start with the family: `ipv4-lab-node-1-to-lab-node-2`, `ipv6-from-lab-node-1`."""
    names = metafunc.fixturenames
    nodes = selected_nodes(metafunc.config)
    families: list[str | None] = list(cluster_families(nodes)) if "family" in names else [None]

    def ident(family: str | None, rest: str) -> str:
        return f"{family}-{rest}" if family else rest

    if "src" in names and "dst" in names:
        _parametrize_pairs(metafunc, _pair_kind(metafunc), families)
    elif "src" in names:
        cases = [pytest.param(n.name, f, id=ident(f, f"from-{n.name}")) for f in families for n in nodes]
        _parametrize(metafunc, ("src",), cases, families, indirect=["src"])
    elif "dst" in names:
        cases = [pytest.param(n, f, id=ident(f, f"to-{n.name}")) for f in families for n in nodes]
        _parametrize(metafunc, ("dst",), cases, families)
    elif families != [None]:
        metafunc.parametrize("family", families, ids=[str(f) for f in families])


def _parametrize(
    metafunc: pytest.Metafunc,
    argnames: tuple[str, ...],
    cases: list[Any],
    families: list[str | None],
    indirect: list[str] | None = None,
) -> None:
    """Cases carry (*argnames values, family); without a `family` argument the family value is dropped."""
    if families == [None]:
        cases = [pytest.param(*c.values[:-1], id=c.id, marks=c.marks) for c in cases]
        metafunc.parametrize(argnames, cases, indirect=indirect or [])
    else:
        metafunc.parametrize((*argnames, "family"), cases, indirect=indirect or [])


def _pair_kind(metafunc: pytest.Metafunc) -> str:
    mark = metafunc.definition.get_closest_marker("pairs")
    kind = mark.args[0] if mark and mark.args else None
    if kind not in PAIR_KINDS:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} takes src and dst: mark it @pytest.mark.pairs(KIND), KIND one of {', '.join(PAIR_KINDS)}"
        )
    return str(kind)


def _parametrize_pairs(metafunc: pytest.Metafunc, kind: str, families: list[str | None]) -> None:
    """Each node with itself (same-node), every ordered pair of distinct nodes (cross-node), or both,
    over each family. With a single node there is no cross-node pair: one skipped case says so."""
    nodes = selected_nodes(metafunc.config)
    by_name = {n.name: n for n in nodes}
    order = {n.name: i for i, n in enumerate(nodes)}
    # only the chosen pairs are walked: at 1000 nodes all N^2 would dominate collection
    wanted = [(n.name, n.name) for n in nodes] if kind in ("all", "same-node") else []
    if kind in ("all", "cross-node"):
        wanted += [(a, b) for a, b in pair_choice(metafunc.config).pairs if a in by_name and b in by_name]
    wanted.sort(key=lambda ab: (order[ab[0]], order[ab[1]]))
    pairs = [
        pytest.param(a, by_name[b], f, id=f"{f}-{a}-to-{b}" if f else f"{a}-to-{b}")
        for f in families
        for a, b in wanted
    ]
    if kind == "cross-node" and len(nodes) == 1:
        only = nodes[0].name
        reason = f"only one node selected ({only}): cross-node paths need two"
        skip = pytest.mark.skip(reason=reason)
        pairs = [
            pytest.param(only, nodes[0], f, id=f"{f}-cross-node" if f else "cross-node", marks=skip) for f in families
        ]
    _parametrize(metafunc, ("src", "dst"), pairs, families, indirect=["src"])
