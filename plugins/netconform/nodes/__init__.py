"""Node access: `agent` (pod exec API over `kube.exec`), `ssh://` and `docker://` (pytest-testinfra hosts,
the `node-access` extra), `none`.

`agent`: a privileged hostNetwork+hostPID DaemonSet `nc-agent` in the run namespace, created on the
first diagnosis and reached through the exec API (no testinfra needed). Every command is
bounded twice: `timeout N` inside the node (the gather script wraps each tool) and a deadline around
the whole exec. Anything that goes wrong is an `AccessError` with one sentence; the diagnosis turns
it into the finding "could not inspect <node>: ...". Options live in `netconform.plugin.nodes`.
"""

from .agent import AgentFleet
from .backend import COMMAND_TIMEOUT_S, CommandOutput, ExecBackend
from .hosts import NodeHosts
from .run import run_bounded
from .spec import AccessError, AccessSpec, parse_node_access

__all__ = [
    "COMMAND_TIMEOUT_S",
    "AccessError",
    "AccessSpec",
    "AgentFleet",
    "CommandOutput",
    "ExecBackend",
    "NodeHosts",
    "parse_node_access",
    "run_bounded",
]
