"""Probe workload: images, ages, leftovers to sweep, and why a probe pod is not Ready."""

from __future__ import annotations

import datetime as dt
from argparse import ArgumentTypeError
from typing import Any

import pytest
from kubernetes import client as k8s

from netconform.plugin.options import duration_s as parse_age
from netconform.workload.images import image_ref
from netconform.workload.labels import (
    CREATED_ANNOTATION,
    KEEP_ANNOTATION,
    MANAGED_BY_LABEL,
    OWNER_ANNOTATION,
    RUN_LABEL,
)
from netconform.workload.manifests import workload_manifests
from netconform.workload.namespace import not_ours, owner_alive, owner_token, stale_reason, sweep
from netconform.workload.readiness import not_ready_message, pod_problem

PROBE = "ghcr.io/netconform/probe:0.1.0"


@pytest.mark.parametrize(
    "repo, override, expected",
    [
        (None, None, PROBE),
        ("registry.local/mirror", None, "registry.local/mirror/probe:0.1.0"),
        ("registry.local/mirror/", None, "registry.local/mirror/probe:0.1.0"),
        ("registry.local/mirror", "my/probe:dev", "my/probe:dev"),
    ],
)
def test_image_overrides(repo: str | None, override: str | None, expected: str) -> None:
    assert image_ref(PROBE, repo, override) == expected


@pytest.mark.parametrize(
    "text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1.5h", 5400), ("2d", 172800)]
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


def test_parse_age_rejects_nonsense() -> None:
    with pytest.raises(ArgumentTypeError, match="is not a duration"):
        parse_age("soon")


def ns(
    run: str,
    created: float,
    owner: str = "",
    keep: bool = False,
    phase: str = "Active",
    name: str | None = None,
) -> k8s.V1Namespace:
    return k8s.V1Namespace(
        metadata=k8s.V1ObjectMeta(
            name=name or f"netconform-{run}",
            labels={MANAGED_BY_LABEL: "netconform", RUN_LABEL: run},
            annotations={
                CREATED_ANNOTATION: str(int(created)),
                OWNER_ANNOTATION: owner,
                KEEP_ANNOTATION: "true" if keep else "false",
            },
        ),
        status=k8s.V1NamespaceStatus(phase=phase),
    )


NOW = 1_800_000_000.0
HERE = "host-a/bootabcd/4242"
DEAD = "host-a/bootabcd/999999999"  # beyond pid_max: never alive
ALIVE = owner_token()  # this very process


def test_old_namespaces_of_another_machine_are_swept() -> None:
    old = ns("old", NOW - 3 * 3600, owner="host-b/bootabcd/1")
    assert stale_reason(old, "mine", 3600, NOW, HERE) == "created 3h ago by a run on host-b"
    assert (
        stale_reason(ns("old", NOW - 3 * 3600), "mine", 3600, NOW, HERE) == "created 3h ago by a run of unknown origin"
    )


def test_namespace_of_a_dead_local_run_is_swept_even_if_young() -> None:
    assert stale_reason(ns("dead", NOW - 60, owner=DEAD), "mine", 3600, NOW, HERE) == "its pytest process is gone"


@pytest.mark.parametrize(
    "namespace",
    [
        ns("mine", NOW - 9 * 3600),  # our own run, however old
        ns("young", NOW - 60, owner="host-b/bootabcd/1"),  # another machine's live run
        ns("kept", NOW - 60, owner=DEAD, keep=True),  # --keep: never swept
        ns("keptold", NOW - 30 * 86400, owner="host-b/bootabcd/1", keep=True),  # kept, 30 days old
        ns("going", NOW - 9 * 3600, phase="Terminating"),  # already being deleted
    ],
)
def test_namespaces_left_alone(namespace: k8s.V1Namespace) -> None:
    assert stale_reason(namespace, "mine", 3600, NOW, HERE) is None


def test_a_live_local_run_is_never_swept_however_old() -> None:
    """Liveness before age: a 2-hour run of this machine keeps its namespace."""
    assert stale_reason(ns("long", NOW - 2 * 3600, owner=ALIVE), "mine", 3600, NOW, ALIVE) is None


@pytest.mark.parametrize(
    "namespace, why",
    [
        (ns("x", NOW, name="team-a-prod"), "not named netconform-<run id>"),
        (ns("Bad Id", NOW, name="netconform-Bad Id"), "not named netconform-<run id>"),
        (ns("", NOW, name="netconform-"), "not named netconform-<run id>"),
    ],
)
def test_namespaces_named_otherwise_are_not_ours(namespace: k8s.V1Namespace, why: str) -> None:
    reason = not_ours(namespace)
    assert reason is not None and reason.startswith(why)


def test_a_run_namespace_without_a_runs_annotations_is_not_ours() -> None:
    bare = k8s.V1Namespace(
        metadata=k8s.V1ObjectMeta(name="netconform-abc", labels={MANAGED_BY_LABEL: "netconform", RUN_LABEL: "abc"})
    )
    assert not_ours(bare) == "no netconform.io/created and netconform.io/owner annotations"
    assert not_ours(ns("abc", NOW)) is None


class _Core:
    """The two CoreV1Api calls the sweep makes, over a fixed list (what a cluster would answer)."""

    def __init__(self, items: list[k8s.V1Namespace]) -> None:
        self.items, self.deleted = items, []  # type: list[k8s.V1Namespace], list[str]

    def list_namespace(self, label_selector: str) -> k8s.V1NamespaceList:
        assert label_selector == "app.kubernetes.io/managed-by=netconform"
        return k8s.V1NamespaceList(items=self.items)

    def delete_namespace(self, name: str) -> None:
        self.deleted.append(name)


def test_sweep_removes_only_dead_runs_and_says_why() -> None:
    month = 30 * 86400.0
    import time

    now = time.time()
    core = _Core(
        [
            ns("x", now - month, name="team-a-prod"),  # carries our label, 30 days old: not ours
            ns("kept1", now - month, owner="host-b/boot/1", keep=True),
            ns("dead1", now - 5, owner=ALIVE.rsplit("/", 1)[0] + "/999999999"),
            ns("live1", now - 3 * 3600, owner=ALIVE),
            ns("mine", now - month),
        ]
    )
    said = sweep(core, "mine", 3600)  # type: ignore[arg-type]
    assert core.deleted == ["netconform-dead1"]
    assert said == [
        "left namespace team-a-prod alone: it carries app.kubernetes.io/managed-by=netconform but is not named "
        "netconform-<run id> after its netconform.io/run-id label",
        "left kept namespace netconform-kept1 in place (--keep; remove it: kubectl delete namespace netconform-kept1)",
        "removed leftover namespace netconform-dead1 (its pytest process is gone)",
    ]


def test_owner_alive_only_judges_this_machine() -> None:
    me = owner_token()
    assert owner_alive(me, me) is True
    assert owner_alive(me.rsplit("/", 1)[0] + "/999999999", me) is False
    assert owner_alive("elsewhere/boot/1", me) is None
    assert owner_alive("garbage", me) is None


def pod(name: str, node: str | None, **status: object) -> dict[str, Any]:
    """The pod as the API lists it (the readiness wait reads plain JSON): the typed model, serialized."""
    model = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=name,
            labels={"netconform.io/role": "server"},
            creation_timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        ),
        spec=k8s.V1PodSpec(node_name=node, containers=[k8s.V1Container(name="probe", image=PROBE)]),
        status=k8s.V1PodStatus(**status),
    )
    wire: dict[str, Any] = k8s.ApiClient().sanitize_for_serialization(model)
    return wire


def waiting(reason: str, message: str = "", **extra: object) -> k8s.V1ContainerStatus:
    return k8s.V1ContainerStatus(
        name="probe",
        image=PROBE,
        image_id="",
        ready=False,
        restart_count=extra.pop("restarts", 0),
        state=k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason=reason, message=message or None)),
        **extra,
    )


def test_image_pull_names_the_image() -> None:
    p = pod(
        "nc-server-abcde",
        "lab-node-2",
        phase="Pending",
        container_statuses=[waiting("ImagePullBackOff", f'Back-off pulling image "{PROBE}"')],
    )
    assert pod_problem(p, {}) == (
        f'nc-server-abcde on lab-node-2: ImagePullBackOff for image {PROBE} (Back-off pulling image "{PROBE}")'
    )


def test_unschedulable_quotes_the_scheduler() -> None:
    p = pod(
        "nc-client-x",
        None,
        phase="Pending",
        conditions=[
            k8s.V1PodCondition(
                type="PodScheduled",
                status="False",
                reason="Unschedulable",
                message="0/3 nodes are available: 3 Insufficient memory.",
            )
        ],
    )
    assert pod_problem(p, {}) == (
        "nc-client-x on no node: Unschedulable (0/3 nodes are available: 3 Insufficient memory.)"
    )


def test_crashloop_gives_the_last_exit() -> None:
    last = k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=2, reason="Error"))
    p = pod(
        "nc-server-y",
        "lab-node-1",
        phase="Running",
        container_statuses=[waiting("CrashLoopBackOff", restarts=4, last_state=last)],
    )
    assert pod_problem(p, {}) == "nc-server-y on lab-node-1: CrashLoopBackOff, last exit code 2 (Error), 4 restarts"


def test_sandbox_failure_comes_from_the_warning_event() -> None:
    p = pod("nc-server-z", "lab-node-3", phase="Pending", container_statuses=[waiting("ContainerCreating")])
    warnings = {
        "nc-server-z": 'FailedCreatePodSandBox: plugin type="flannel" failed (add): open /run/flannel/subnet.env'
    }
    assert pod_problem(p, warnings) == (
        'nc-server-z on lab-node-3: ContainerCreating (FailedCreatePodSandBox: plugin type="flannel" failed (add): '
        "open /run/flannel/subnet.env)"
    )


def test_pods_stuck_for_the_same_reason_are_named_together_and_long_reasons_keep_their_end() -> None:
    runc = (
        "FailedCreatePodSandBox: Failed to create pod sandbox: rpc error: code = Unknown desc = failed to create "
        "containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to "
        "start container process: can't get final child's PID from pipe: EOF: unknown"
    )
    stuck = [
        pod(f"nc-server-{i}", f"lab-node-{i}", phase="Pending", container_statuses=[waiting("ContainerCreating")])
        for i in (1, 2)
    ]
    text = not_ready_message(stuck, ["lab-node-1", "lab-node-2"], {"nc-server-1": runc, "nc-server-2": runc}, 121, True)
    assert text.startswith(
        "probes not Ready after 121s: nc-server-1 on lab-node-1, nc-server-2 on lab-node-2: "
        "ContainerCreating (FailedCreatePodSandBox: Failed to create pod sandbox: rpc er ... "
    )
    assert "can't get final child's PID from pipe: EOF: unknown)" in text
    assert text.count("FailedCreatePodSandBox") == 1


def test_timeout_message_lists_every_problem_in_one_line() -> None:
    stuck = pod("nc-server-abcde", "lab-node-2", phase="Pending", container_statuses=[waiting("ErrImagePull")])
    text = not_ready_message([stuck], ["lab-node-1", "lab-node-2"], {}, 120.4, slices_ok=False)
    assert text == (
        f"probes not Ready after 120s: nc-server-abcde on lab-node-2: ErrImagePull for image {PROBE}; "
        "no nc-server pod on lab-node-1; no nc-client pod on lab-node-1; no nc-client pod on lab-node-2; "
        "no nc-single pod on lab-node-1; no nc-policy-target pod on lab-node-1; no nc-policy-target pod on "
        "lab-node-2; no nc-policy-client pod on lab-node-1"
    )
    assert "\n" not in text


def test_workload_pins_pods_to_the_selected_nodes_and_tolerates_taints() -> None:
    server, client, single, *rest = workload_manifests("ab12cd34", PROBE, ["lab-node-1", "lab-node-3"])
    services = [m for m in rest if m["kind"] == "Service"]
    spec = server["spec"]["template"]["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [  # the API accepts a single value per matchFields term: one term per node, ORed
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["lab-node-1"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["lab-node-3"]}]},
    ]
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert "cpu" not in spec["containers"][0]["resources"]["limits"]
    assert client["spec"]["template"]["metadata"]["labels"]["netconform.io/role"] == "client"
    kinds = {
        s["metadata"]["name"]: (
            s["spec"].get("type", "ClusterIP"),
            s["spec"].get("externalTrafficPolicy"),
            s["spec"].get("clusterIP"),
        )
        for s in services
    }
    assert kinds == {
        "nc-server": ("ClusterIP", None, None),
        "nc-nodeport": ("NodePort", "Cluster", None),
        "nc-nodeport-local": ("NodePort", "Local", None),
        "nc-headless": ("ClusterIP", None, "None"),
        "nc-hairpin": ("ClusterIP", None, None),
        "nc-single-local": ("NodePort", "Local", None),
    }
    # every Service over every family the cluster has
    assert {s["spec"]["ipFamilyPolicy"] for s in services} == {"PreferDualStack"}
    # the hairpin Service: the clients, each only to itself
    hairpin = next(s for s in services if s["metadata"]["name"] == "nc-hairpin")
    assert hairpin["spec"]["internalTrafficPolicy"] == "Local"
    assert hairpin["spec"]["selector"]["netconform.io/role"] == "client"
    # the single pod: one DaemonSet pod, on the first selected node only, behind its own eTP=Local NodePort
    pinned = single["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert pinned["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["lab-node-1"]}]}
    ]
    lone = next(s for s in services if s["metadata"]["name"] == "nc-single-local")
    assert (
        lone["spec"]["selector"]["netconform.io/role"]
        == single["spec"]["selector"]["matchLabels"]["netconform.io/role"]
    )
