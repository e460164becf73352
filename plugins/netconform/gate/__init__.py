"""The upgrade gate program (`ci/gate`, `python -m netconform.gate`): did the upgrade break anything that
worked before it?

  baseline  run the suite, record its verdicts, open the gate: namespace `netconform-gate` with a
            hold server pod on every node and, for every ordered pair of nodes, a pod on the source
            node holding one long-lived TCP connection (`probe hold`) to the destination node's server
            pod, directly (pod) and through a per-node ClusterIP Service (service).
  check     run the suite again, read every hold pod's log (JSON lines: connected / broken), compare
            with the baseline. New failures or broken connections block (exit 1); fixed ones are said.
  close     delete the gate namespace.

holds: what a hold is and its manifests; compare: verdicts and the summary; namespace: the API calls;
phases: baseline/check/close; exits: exit codes.
"""

from .compare import BAD, Comparison, Verdict, cause_for_hold, causes_of, compare, judge, summary
from .exits import EXIT_BLOCK, EXIT_CANNOT_RUN, EXIT_PASS, EXIT_USAGE, GateError
from .holds import (
    GATE_LABEL,
    MANAGED_BY,
    NAMESPACE,
    NODE_LABEL,
    ROLE_LABEL,
    Hold,
    HoldState,
    hold_manifest,
    namespace_manifest,
    parse_hold_log,
    planned_holds,
    server_manifest,
    service_manifest,
)
from .namespace import GateNamespace, open_gate, read_states
from .phases import baseline, check, close, run_suite

__all__ = [
    "BAD",
    "EXIT_BLOCK",
    "EXIT_CANNOT_RUN",
    "EXIT_PASS",
    "EXIT_USAGE",
    "GATE_LABEL",
    "MANAGED_BY",
    "NAMESPACE",
    "NODE_LABEL",
    "ROLE_LABEL",
    "Comparison",
    "GateError",
    "GateNamespace",
    "Hold",
    "HoldState",
    "Verdict",
    "baseline",
    "cause_for_hold",
    "causes_of",
    "check",
    "close",
    "compare",
    "hold_manifest",
    "judge",
    "namespace_manifest",
    "open_gate",
    "parse_hold_log",
    "planned_holds",
    "read_states",
    "run_suite",
    "server_manifest",
    "service_manifest",
    "summary",
]
