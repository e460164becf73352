"""The NetworkPolicy check's rounds, once per run (whichever xdist worker needs them first, after the
fan-out), the suites' view of them (the `network_policy` fixture), and the `network_policy` marker.

The rounds run after the one fan-out (`dials`): every policy target was dialed there with no policy in
place, and no other check dials anything once it is done. The policies select only the check's own
pods (netconform.workload.manifests.network_policies), so nothing else of the run is isolated.
"""

from __future__ import annotations

import pytest

from netconform.dialing.model import DialResult
from netconform.dialing.plan import network_policy_plan
from netconform.dialing.policy import PolicyRun, denied, run_rounds, worst_case_s
from netconform.errors import ProbeSetupError
from netconform.kube.inventory import family_of
from netconform.kube.kube_system import read_kube_system
from netconform.plugin import paths
from netconform.plugin.dial import DialBook, pair_choice
from netconform.plugin.permissions import LIST_DAEMONSETS
from netconform.plugin.session import Cluster, run_id
from netconform.plugin.shared import once_per_run, shared_dir
from netconform.reporting.environment import detect_cni
from netconform.workload.deploy import Deployment
from netconform.workload.labels import POLICY
from netconform.workload.policy import create_network_policies

MARKER = "network_policy"
DESELECT = f"-k 'not {MARKER}'"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: the NetworkPolicy check; where no enforcement is intended, deselect it "
        f"({DESELECT} or -m 'not {MARKER}')",
    )


@pytest.fixture(scope="session")
def _policy_run(
    pytestconfig: pytest.Config,
    cluster: Cluster,
    probes: Deployment,
    dials: DialBook,  # the fan-out first: it dials the policy targets before any policy exists
    tmp_path_factory: pytest.TempPathFactory,
) -> PolicyRun:
    timeout_ms = int(pytestconfig.getoption("dial_timeout") * 1000)
    plan = network_policy_plan(probes, cluster.nodes, pair_choice(pytestconfig))
    allowed = probes.policy_client.name if probes.policy_client else ""

    def rounds() -> dict[str, object]:
        def create() -> list[str]:
            return create_network_policies(cluster.api_client, probes.namespace, run_id(pytestconfig))

        try:
            return run_rounds(cluster.configuration, probes.namespace, plan, allowed, timeout_ms, create).to_dict()
        except ProbeSetupError as exc:
            return {"error": str(exc)}

    data = once_per_run(
        shared_dir(tmp_path_factory, run_id(pytestconfig)),
        "network-policy",
        rounds,
        wait_s=worst_case_s(plan, timeout_ms),
        what="the NetworkPolicy rounds",
    )
    if "error" in data:  # this check cannot be made; the others go on
        pytest.fail(f"netconform: the NetworkPolicy check could not be set up: {data['error']}", pytrace=False)
    return PolicyRun.from_dict(data)


def cni_name(cluster: Cluster) -> str:
    """The CNI by name, as environment.properties detects it (node annotations, else kube-system's
    DaemonSets where permitted), without its details: "flannel"; "the CNI" when nothing tells."""
    annotations = [n.annotations for n in cluster.all_nodes]
    found = detect_cni(annotations, [])
    if found.startswith("unknown") and cluster.permitted(LIST_DAEMONSETS):
        names = read_kube_system(cluster.api_client, daemonsets=True, proxy_config=False).daemonset_names
        found = detect_cni(annotations, names)
    return "this cluster's CNI" if found.startswith("unknown") else found.split(" (", 1)[0]


class PolicyView:
    """A test's view of the check's last round: per client pod and family, and the allowed client's."""

    def __init__(self, run: PolicyRun, cluster: Cluster, item: pytest.Item) -> None:
        self.run, self._cluster, self._item = run, cluster, item

    @property
    def waited_s(self) -> float:
        return self.run.waited_s

    @property
    def allowed_pod(self) -> str:
        return self.run.allowed_pod

    def results_of(self, pod: str, family: str) -> list[DialResult]:
        """What `pod` got at the policy targets of `family` in the last round; fails the test when its
        probe could not be run (no verdict)."""
        outcome = self.run.outcomes.get(pod)
        if outcome is None:
            pytest.fail(f"netconform: {pod} was not in the NetworkPolicy check's rounds", pytrace=False)
        if outcome.error:
            pytest.fail(f"could not run the probe in {pod} ({outcome.source.node}): {outcome.error}", pytrace=False)
        return [r for r in outcome.results if family_of(r.host) == family]

    def allowed(self, family: str, *, record: bool = False) -> dict[str, DialResult]:
        """The allowed client's results by target id; recorded as the test's paths when asked."""
        if not self.run.allowed_pod:
            pytest.fail(f"{POLICY['client_daemonset']} never became Ready on the first node: the policy that "
                        "allows it cannot be checked, nor a denial told from a dead target", pytrace=False)  # fmt: skip
        results = self.results_of(self.run.allowed_pod, family)
        if record:
            self.record(results)
        return {r.target_id: r for r in results}

    def record(self, results: list[DialResult]) -> None:
        """These results as the test's paths (diagnosis and the report read them)."""
        for r in results:
            paths.record(self._item, r.path_info(others=results))

    def untargeted(self, results: dict[str, DialResult]) -> list[str]:
        """Selected nodes the allowed client dialed no policy target on (their target never became Ready)."""
        dialed = {r.dest_node for r in results.values()}
        return [n.name for n in self._cluster.nodes if n.name not in dialed]

    def enforced_nowhere(self) -> bool:
        """No client pod was denied anything in the last round: the policy is not enforced at all."""
        return not any(
            denied(r)
            for pod, o in self.run.outcomes.items()
            if pod != self.run.allowed_pod and not o.error
            for r in o.results
        )

    def cni(self) -> str:
        return cni_name(self._cluster)


@pytest.fixture
def network_policy(request: pytest.FixtureRequest, _policy_run: PolicyRun, cluster: Cluster) -> PolicyView:
    """The NetworkPolicy check's last round (netconform.dialing.policy), once per run."""
    return PolicyView(_policy_run, cluster, request.node)
