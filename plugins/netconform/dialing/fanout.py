"""The fan-out: one `probe dial` per client pod, all concurrently, over the one pod exec.

The exec is a transport; what comes back is data. An exec error or output that is not the probe's
JSON is a transport failure (retried once, then "could not run the probe in <pod>"), never a
network verdict. A target that timed out is a network verdict.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from kubernetes import client as k8s

from netconform.dialing.model import Source, SourceOutcome, Target
from netconform.dialing.probe import DIAL_COMMAND, build_spec, parse_output, worst_case_seconds
from netconform.errors import ProbeRunError
from netconform.kube.exec import ExecError, run_in_pod

__all__ = ["MAX_PARALLEL_EXECS", "dial_all", "dial_from", "run_probe_dial"]

MAX_PARALLEL_EXECS = 32
# How the spec reaches a pod and stdout comes back; tests replace it to exercise retries.
ProbeRunner = Callable[[k8s.Configuration, str, str, str, float], str]


def run_probe_dial(configuration: k8s.Configuration, namespace: str, pod: str, spec_json: str, wait_s: float) -> str:
    """`probe dial --spec -` in `pod`, the spec on stdin; its stdout, or ProbeRunError."""
    try:
        res = run_in_pod(configuration, namespace, pod, DIAL_COMMAND, stdin=spec_json, timeout_s=wait_s)
    except ExecError as exc:
        raise ProbeRunError(str(exc)) from None
    if res.rc != 0:
        tail = (res.stderr or res.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise ProbeRunError(f"probe dial exited {res.rc}: {tail[0][:200]}")
    return res.stdout


def dial_from(
    configuration: k8s.Configuration,
    namespace: str,
    source: Source,
    targets: list[Target],
    timeout_ms: int,
    runner: ProbeRunner | None = None,
) -> SourceOutcome:
    """Dial every target from one client pod; a transport failure is retried once."""
    run = runner or run_probe_dial
    spec_json = json.dumps(build_spec(targets, timeout_ms), separators=(",", ":"))
    wait_s = worst_case_seconds(targets, timeout_ms) + 15.0
    started = time.monotonic()
    outcome = SourceOutcome(source=source)
    for attempt in (1, 2):
        outcome.tries = attempt
        try:
            stdout = run(configuration, namespace, source.pod, spec_json, wait_s)
            outcome.results = parse_output(source, targets, stdout, timeout_ms)
            outcome.error = None
            break
        except ProbeRunError as exc:
            outcome.error = str(exc)
    outcome.seconds = round(time.monotonic() - started, 3)
    return outcome


def dial_all(
    configuration: k8s.Configuration,
    namespace: str,
    plan: dict[Source, list[Target]],
    timeout_ms: int,
    runner: ProbeRunner | None = None,
) -> list[SourceOutcome]:
    """All client pods concurrently; outcomes in the plan's (node-sorted) order.

    Daemon threads, not a ThreadPoolExecutor: on Ctrl-C/SIGTERM the main thread must get to the
    namespace cleanup now, not after every exec has waited out its timeout (executor threads are
    joined at exit).
    """
    outcomes: dict[int, SourceOutcome] = {}
    gate = threading.Semaphore(MAX_PARALLEL_EXECS)

    def one(index: int, source: Source, targets: list[Target]) -> None:
        with gate:
            outcomes[index] = dial_from(configuration, namespace, source, targets, timeout_ms, runner)

    threads = [
        threading.Thread(target=one, args=(i, source, targets), name=f"dial-{source.node}", daemon=True)
        for i, (source, targets) in enumerate(plan.items())
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # bounded: dial_from bounds each exec by the plan's worst case
    return [outcomes[i] for i in range(len(threads))]
