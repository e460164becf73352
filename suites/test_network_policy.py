"""NetworkPolicy: a policy isolating a pod's ingress is enforced from every node, and one allowing a
chosen client lets exactly that client in.

Incident (docs/faults.md #23, NetworkPolicy not enforced): policies are written and accepted by the API,
and nothing enforces them: the CNI implements none (flannel), or its policy agent is not running.
Every connection they were meant to refuse still goes through, and nothing says so.
Check: the check's own pods, which no other check dials and no Service selects: nc-policy-target on
every node, nc-policy-client on the first. The fan-out dials every node's target from every client pod
(its own node's and its chosen peers', TCP and UDP) with no policy in place: the paths work. Then
nc-policy-deny (every connection into nc-policy-target) and nc-policy-allow (nc-policy-client in, on
both ports) are created in the run namespace, and the same dials, with nc-policy-client dialing every
target, are repeated (one exec per pod, concurrently) until every client is denied and nc-policy-client
answered, at most 30 s (netconform.dialing.policy says why that is enough). The last round is judged:
each client denied everywhere (a denial counts only where nc-policy-client got through to the same
target in that round: a live target, not a broken path), nc-policy-client answered by every target.
Where no enforcement is intended, deselect it: -k 'not network_policy' (or -m 'not network_policy').
"""

import pytest

from netconform.dialing.plan import network_policy_target
from netconform.dialing.policy import denied
from netconform.plugin.dial import SourceView
from netconform.plugin.policy import DESELECT, PolicyView
from netconform.workload.labels import POLICY

pytestmark = pytest.mark.network_policy


def test_policy_denies_this_client(src: SourceView, family: str, network_policy: PolicyView) -> None:
    after = network_policy.results_of(src.pod, family)
    if not after:  # nothing planned: the fan-out's gap says why (a node without policy target, a family)
        src.result(network_policy_target("tcp", src.node.name, family))
    # paths are recorded (for diagnosis and the report) where they say something: a broken one, or all
    # of them once the test passes; a policy not enforced is the verdict itself, with nothing to inspect
    broken = [b for r in after if not (b := src.result(r.target_id, record=False)).ok]
    for before in broken:
        src.result(before.target_id)
    assert not broken, (
        f"before any NetworkPolicy, {broken[0].describe()}: the path has to work before a policy can be seen to deny it"
    )
    through = [r for r in after if not denied(r)]
    waited = f"{network_policy.waited_s:.0f}s"
    if through and network_policy.enforced_nowhere():
        targets = ", ".join(sorted({r.dest_node or r.host for r in through}))
        pytest.fail(
            f"{network_policy.cni()} enforces no NetworkPolicy: {src.pod} ({src.node.name}) still reached "
            f"{POLICY['target_daemonset']} on {targets} {waited} after the API accepted {POLICY['deny']}, which "
            f"denies every connection into it (where no enforcement is intended, deselect this check: {DESELECT})",
            pytrace=False,
        )
    assert not through, (
        f"NetworkPolicy {POLICY['deny']} is not enforced on {len(through)} of {len(after)} paths from "
        f"{src.node.name} {waited} after it was created, while other paths were denied: "
        + "; ".join(f"{r.path()} connected" for r in through)
    )
    alive = network_policy.allowed(family)
    unproven = [r for r in after if not (r.target_id in alive and alive[r.target_id].ok)]
    network_policy.record([alive[r.target_id] for r in unproven if r.target_id in alive])
    assert not unproven, (
        f"{len(unproven)} denials are no verdict: {network_policy.allowed_pod}, which {POLICY['allow']} lets in, "
        "did not reach these targets in the same round either (a dead target or a broken path): "
        + "; ".join(r.path() for r in unproven)
    )
    for result in after:
        src.result(result.target_id)


def test_policy_lets_the_allowed_client_in(family: str, network_policy: PolicyView) -> None:
    results = network_policy.allowed(family, record=True)
    assert results, f"{network_policy.allowed_pod} dialed no policy target over {family}"
    missing = network_policy.untargeted(results)
    assert not missing, (
        f"no {POLICY['target_daemonset']} pod became Ready on {', '.join(missing)}: whether policy is enforced "
        "there is not checked"
    )
    failed = [r for r in results.values() if not r.ok]
    assert not failed, (
        f"NetworkPolicy {POLICY['allow']} does not let {network_policy.allowed_pod} in "
        f"{network_policy.waited_s:.0f}s after it was created: " + "; ".join(r.describe() for r in failed)
    )
