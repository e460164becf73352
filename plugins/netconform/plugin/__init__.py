"""The pytest11 entry point `netconform`: loads netconform's pytest plugins (the only modules with
options, hooks and fixtures) into a run that collects the netconform suites, and into no other.

Every pytest session of a venv with netconform installed imports this module, so it stays light (the
standard library and pytest) and adds nothing by itself: another project's run gets none of
netconform's options (its own `--kubeconfig` is free), fixtures or imports. `pytest suites/`, `pytest
--pyargs netconform.suites` and `netconform run` name the suites and get all of it;
`pytest -p no:netconform` turns it off everywhere.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from netconform.installed import names_suites, suites_dir

# not `pytest_plugins`: pytest would load those into every session
SUITE_PLUGINS = (
    "netconform.plugin.session",
    "netconform.plugin.junit",
    "netconform.plugin.checks",
    "netconform.plugin.probes",
    "netconform.plugin.dial",
    "netconform.plugin.policy",
    "netconform.plugin.collection",
    "netconform.plugin.dns_retries",
    "netconform.plugin.nodes",
    "netconform.plugin.diagnose",
    "netconform.plugin.reporting",
    "netconform.plugin.reporting_per_test",
)


def _args(early_config: pytest.Config) -> list[str]:
    """What pytest will collect, decided as pytest decides it: the arguments, else `testpaths` when
    run from the rootdir, else the current directory."""
    ns = early_config.known_args_namespace
    if ns.file_or_dir:
        return [str(a) for a in ns.file_or_dir]
    invocation = early_config.invocation_params.dir
    if invocation == early_config.rootpath:
        testpaths = [str(p) for p in early_config.getini("testpaths")]
        if testpaths:
            return testpaths
    return [str(invocation)]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before the command line is parsed for good (so `--kubeconfig` etc. parse) and before any conftest."""
    pyargs = bool(early_config.known_args_namespace.pyargs)
    if not names_suites(_args(early_config), pyargs, Path(early_config.invocation_params.dir), suites_dir()):
        return
    manager = early_config.pluginmanager
    for name in SUITE_PLUGINS:
        # registered as they are: `netconform run` has imported some already (import_plugin would warn
        # that their asserts cannot be rewritten; plugins need no rewriting). `-p no:NAME` still blocks.
        if not manager.is_blocked(name) and manager.get_plugin(name) is None:
            manager.register(importlib.import_module(name), name)
