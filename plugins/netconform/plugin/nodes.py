"""pytest plugin: how the diagnosis reaches nodes (`--node-access`, `--agent-timeout`).

The access itself is `netconform.nodes`; this module holds the options and builds the `NodeHosts`
of a run from them.
"""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from netconform.errors import UsageError
from netconform.nodes import AccessSpec, AgentFleet, NodeHosts, parse_node_access
from netconform.plugin.options import duration_in
from netconform.plugin.probes import images

__all__ = ["node_hosts"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform-nodes", "netconform node access (diagnosis)")
    group.addoption(
        "--node-access",
        metavar="HOW",
        default="agent",
        help="how diagnosis reaches nodes: agent (privileged DaemonSet, default), "
        "ssh://user@{node}, docker://{node} (kind), or none",
    )
    group.addoption(
        "--agent-timeout",
        metavar="DURATION",
        type=duration_in(1.0, 3600.0),
        default="90s",
        help="how long to wait for the node agent pod on a node, 1s..1h, e.g. 90s, 2m (a plain number is seconds; default 90s)",
    )


def pytest_configure(config: pytest.Config) -> None:
    _access_spec(config)  # fail early on a bad value


def _access_spec(config: pytest.Config) -> AccessSpec:
    """--node-access, validated; pytest.UsageError with one sentence."""
    try:
        return parse_node_access(config.getoption("node_access"))
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def _agent_image(config: pytest.Config) -> str:
    """The node agent's image after --image-repo / --agent-image (options of netconform.plugin.probes)."""
    return images(config)["agent"]


def node_hosts(
    config: pytest.Config,
    configuration: k8s.Configuration,
    namespace: str,
    node_names: list[str],
    node_ips: dict[str, str | None],
) -> NodeHosts:
    """The run's node hosts: the agent fleet in the run namespace, or testinfra URLs, or none."""
    spec = _access_spec(config)
    fleet = None
    if spec.kind == "agent":
        fleet = AgentFleet(
            configuration, namespace, _agent_image(config), node_names, config.getoption("agent_timeout")
        )
    return NodeHosts(spec, fleet, node_ips)
