"""The parts of a run that need no packets, measured against a (simulated) cluster, each in its own process.

    .venv/bin/python ci/simlib/bench.py deploy --kubeconfig KC [--ready-timeout S]
    .venv/bin/python ci/simlib/bench.py report --kubeconfig KC

`deploy`: what the suite's `probes` fixture does (netconform.workload.deploy.deploy: namespace,
DaemonSets nc-server and nc-client on every selected node, four Services, then the bounded wait until
every pod is Ready and every Service lists every server), then deletes the namespace and waits until it
is gone. `report`: collects the suite in this process (as `pytest suites/ --collect-only`), makes every
collected test a passed report carrying the path it checks, and times what netconform.reporting does
with a run's reports: Allure labels per test, the verdicts (RunVerdicts), the node x node matrix
(build + SVG), outcomes.json and environment.properties (kube-system read as the plugin reads it).

Each prints one JSON line: seconds per phase, API requests (netconform's own count), peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def deploy_ready(kubeconfig: str, ready_timeout: float) -> dict[str, Any]:
    from netconform.kube.connect import make_api_client, request_counts, resolve_target
    from netconform.kube.inventory import list_nodes, select_nodes
    from netconform.workload.deploy import DeployRequest, deploy
    from netconform.workload.images import DEFAULT_IMAGES
    from netconform.workload.namespace import delete_namespace

    target = resolve_target(kubeconfig, None)
    api = make_api_client(target.configuration)
    nodes = select_nodes(list_nodes(api), None, None)
    before = request_counts()["api"]
    started = time.monotonic()
    dep = deploy(
        api,
        DeployRequest(
            run_id=secrets.token_hex(4),
            node_names=[n.name for n in nodes],
            probe_image=DEFAULT_IMAGES["probe"],
            keep=False,
            ready_timeout_s=ready_timeout,
            cluster_domain="cluster.local",
            extra_manifests=[],
            progress=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True),
        ),
    )
    ready_s = time.monotonic() - started
    deploy_requests = request_counts()["api"] - before
    rss = _rss_mib()
    from kubernetes import client as k8s

    started = time.monotonic()
    said = delete_namespace(k8s.CoreV1Api(api), dep.namespace, 600.0)
    return {
        "nodes": len(nodes),
        "pods": len(dep.servers) + len(dep.clients),
        "deploy_ready_s": round(ready_s, 2),
        "api_requests": deploy_requests,
        "peak_rss_mib": rss,
        "cleanup_s": round(time.monotonic() - started, 2),
        "cleanup": said or "",
    }


class _Grab:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def pytest_collection_finish(self, session: Any) -> None:
        self.items = list(session.items)


class _Report:
    """A passed test report as the plugins hand it to netconform.reporting."""

    when, outcome, passed, failed, skipped, longrepr = "call", "passed", True, False, False, None

    def __init__(self, nodeid: str, user_properties: list[tuple[str, object]]) -> None:
        self.nodeid, self.user_properties = nodeid, user_properties


def report(kubeconfig: str) -> dict[str, Any]:
    import pytest

    from netconform.dialing.path import PathInfo, record_path
    from netconform.kube.connect import make_api_client, request_counts, resolve_target
    from netconform.kube.inventory import list_nodes
    from netconform.kube.kube_system import read_kube_system
    from netconform.reporting import environment as env
    from netconform.reporting import matrix as mx
    from netconform.reporting.labels import OUTSIDE, check_of, labels_for, node_name
    from netconform.reporting.outcomes import RunVerdicts, write_outcomes

    grab = _Grab()
    started = time.monotonic()
    code = pytest.main(
        [
            str(REPO / "suites"),
            "--collect-only",
            "-qq",
            f"--kubeconfig={kubeconfig}",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
        ],
        plugins=[grab],
    )
    collect_s = time.monotonic() - started
    if code != 0 or not grab.items:
        raise SystemExit(f"bench: collecting the suite failed (pytest exit {code})")
    items = grab.items
    timings: dict[str, float] = {}

    def timed(key: str, fn: Any) -> Any:
        t = time.monotonic()
        out = fn()
        timings[key] = round(time.monotonic() - t, 3)
        return out

    def labels() -> None:
        for it in items:
            labels_for(it.module.__name__, it.originalname, getattr(it, "callspec", None) and it.callspec.params or {})

    def verdicts() -> RunVerdicts:
        run = RunVerdicts()
        for it in items:
            params = it.callspec.params if hasattr(it, "callspec") else {}
            props: list[tuple[str, object]] = []
            src, dst = node_name(params.get("src")), node_name(params.get("dst"))
            record_path(props, PathInfo(check_of(it.module.__name__), src or OUTSIDE, dst, proto="tcp"))
            run.add(_Report(it.nodeid, props), [])
        return run

    run = timed("verdicts", verdicts)
    timed("labels", labels)
    api = make_api_client(resolve_target(kubeconfig, None).configuration)
    before = request_counts()["api"]
    all_nodes = timed("inventory", lambda: list_nodes(api))
    names = [n.name for n in all_nodes]
    svg = timed("matrix", lambda: mx.render_svg(mx.build(names, run.records), "netconform run sim: node x node"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outcomes.json"
        timed("outcomes_json", lambda: write_outcomes(out, "sim", 0, run.outcomes))
        outcomes_bytes = out.stat().st_size
    props = timed(
        "environment",
        lambda: env.render_properties(
            env.cluster_properties(
                context="netconform-sim",
                server="sim",
                version="sim",
                nodes=all_nodes,
                selected=names,
                kube_system=read_kube_system(api),
                node_rules=[],
                unreadable=False,
                run_id="sim",
            )
        ),
    )
    report_s = sum(v for k, v in timings.items() if k not in ("inventory",))
    return {
        "nodes": len(all_nodes),
        "tests": len(items),
        "collect_s": round(collect_s, 2),
        "report_s": round(report_s, 2),
        **{f"{k}_s": v for k, v in timings.items()},
        "svg_kib": len(svg) // 1024,
        "outcomes_kib": outcomes_bytes // 1024,
        "environment_bytes": len(props),
        "api_requests": request_counts()["api"] - before,
        "peak_rss_mib": _rss_mib(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("deploy", "report"))
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    opts = parser.parse_args()
    result = deploy_ready(opts.kubeconfig, opts.ready_timeout) if opts.what == "deploy" else report(opts.kubeconfig)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
