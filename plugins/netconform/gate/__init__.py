"""The upgrade gate program (`ci/gate`, `python -m netconform.gate`): did the upgrade break anything that
worked before it?

  baseline  run the suite, record its verdicts, open the gate: namespace `netconform-gate` with two
            DaemonSets on the selected nodes (--node-selector/--node-limit, as the suite): `gate-server`
            (`probe serve`) and `gate-holder` (one `probe hold --plan` per node holding every connection
            from that node), a ClusterIP Service per node, and the plan (ConfigMap `gate-plan`). The held
            pairs are the suite's (dialing.pairs: all up to 20 nodes, else a seeded sample), each by pod
            IP and by ClusterIP. 2 pods per node, whatever the number of pairs.
  check     run the suite again, read every holder's log (JSON lines per target: connected / broken) and
            which gate pods lived through the window, compare with the baseline. New failures or broken
            connections block (exit 1); expected churn (an end's pod replaced, restarted, gone) and fixed
            tests are said.
  close     delete the gate namespace.

holds: what a hold is and its manifests; pods: which gate pod is where and whether it lived on;
compare: verdicts and the summary; namespace: the API calls and their permissions; phases:
baseline/check/close; exits: exit codes.
"""

from .compare import BAD, Comparison, Verdict, cause_for_hold, causes_of, compare, judge, summary
from .exits import EXIT_BLOCK, EXIT_CANNOT_RUN, EXIT_PASS, EXIT_USAGE, GateError
from .holds import (
    BREAK_AFTER_S,
    GATE_LABEL,
    HOLD_INTERVAL,
    HOLDER_DS,
    MANAGED_BY,
    NAMESPACE,
    NODE_LABEL,
    PLAN_CONFIGMAP,
    ROLE_LABEL,
    SERVER_DS,
    Hold,
    HoldState,
    holder_daemonset,
    namespace_manifest,
    parse_holder_log,
    plan_configmap,
    planned_holds,
    server_daemonset,
    service_manifest,
)
from .namespace import PERMISSIONS, GateNamespace, OpenGate, open_gate, read_states
from .phases import Selection, baseline, check, close, run_suite
from .pods import GatePod, end_churn, gate_pods

__all__ = [
    "BAD",
    "BREAK_AFTER_S",
    "EXIT_BLOCK",
    "EXIT_CANNOT_RUN",
    "EXIT_PASS",
    "EXIT_USAGE",
    "GATE_LABEL",
    "HOLDER_DS",
    "HOLD_INTERVAL",
    "MANAGED_BY",
    "NAMESPACE",
    "NODE_LABEL",
    "PERMISSIONS",
    "PLAN_CONFIGMAP",
    "ROLE_LABEL",
    "SERVER_DS",
    "Comparison",
    "GateError",
    "GateNamespace",
    "GatePod",
    "Hold",
    "HoldState",
    "OpenGate",
    "Selection",
    "Verdict",
    "baseline",
    "cause_for_hold",
    "causes_of",
    "check",
    "close",
    "compare",
    "end_churn",
    "gate_pods",
    "holder_daemonset",
    "judge",
    "namespace_manifest",
    "open_gate",
    "parse_holder_log",
    "plan_configmap",
    "planned_holds",
    "read_states",
    "run_suite",
    "server_daemonset",
    "service_manifest",
    "summary",
]
