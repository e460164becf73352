"""pytest plugin: Allure results on every suite run, the node x node matrix, environment.properties.

Where results go: `--alluredir` if given, else `reports/allure-results` under the
project's rootdir (a clone's root) or, with no pytest config file, the current directory. The
controller (the only process without xdist's `workerinput`) cleans the directory once, before any
worker starts, and tells the workers where it is; workers never clean (allure's own
--clean-alluredir would race between workers). Everything per test (labels, steps, attachments)
happens in the process that ran the test (netconform.plugin.reporting_per_test, with
netconform.plugin.allure_light where it can run); everything per run (outcomes, matrix, environment)
on the controller, here.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import allure
import pytest

from netconform.diagnose import Diagnosis, cause_categories
from netconform.errors import UsageError, error_text
from netconform.kube.kube_system import read_kube_system
from netconform.plugin.diagnose import gathered_evidence
from netconform.plugin.permissions import GET_KUBE_PROXY_CONFIG, LIST_DAEMONSETS
from netconform.plugin.session import get_cluster, is_active, is_controller, run_id, wants_cluster
from netconform.reporting import categories
from netconform.reporting import environment as env
from netconform.reporting import matrix as mx
from netconform.reporting.outcomes import RunVerdicts, write_outcomes

__all__ = ["allure_on"]  # and hooks

_RESULTS = pytest.StashKey[Path]()
_COLLECTOR = pytest.StashKey["_Collector"]()
_SUMMARY = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform-reporting", "netconform reports")
    group.addoption(
        "--matrix",
        metavar="PATH",
        help="where to write the node x node picture of the run (default: reports/matrix.svg, beside the Allure results)",
    )
    group.addoption("--no-allure", action="store_true", help="do not write Allure results unless --alluredir is given")
    group.addoption(
        "--outcomes-json",
        metavar="PATH",
        help="write every test's outcome, diagnosed causes and paths as JSON (the upgrade gate compares these)",
    )


def _reports_dir(config: pytest.Config) -> Path:
    """reports/ of the project pytest found a config file for (a clone: its root), else of the current
    directory: never beside the installed suites (a wheel's rootdir is an ancestor of site-packages)."""
    base = config.rootpath if config.inipath is not None else config.invocation_params.dir
    return Path(base) / "reports"


def allure_on(config: pytest.Config) -> bool:
    """Whether allure-pytest writes results in this run."""
    return config.pluginmanager.has_plugin("allure_listener") or bool(getattr(config.option, "allure_report_dir", None))


def _clean_results(path: Path) -> None:
    """Empty the results directory (keep the directory: a CI cache or volume may point at it)."""
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before allure-pytest's own pytest_configure reads --alluredir."""
    if not hasattr(config.option, "allure_report_dir"):
        return  # allure-pytest not installed or disabled (-p no:allure_pytest)
    if not is_controller(config):
        shared = config.workerinput.get("netconform_alluredir")  # type: ignore[attr-defined]
        if shared and not config.option.allure_report_dir:
            config.option.allure_report_dir = shared
        config.option.clean_alluredir = False  # the controller cleaned it, once
        return
    if not wants_cluster(config) or config.option.collectonly:
        return
    collector = _Collector()
    config.stash[_COLLECTOR] = collector
    config.pluginmanager.register(collector, "netconform-reporting-collector")
    given = config.option.allure_report_dir
    if not given and config.getoption("no_allure"):
        return
    path = Path(given).resolve() if given else _reports_dir(config) / "allure-results"
    if not given or config.option.clean_alluredir:
        _clean_results(path)
    path.mkdir(parents=True, exist_ok=True)
    config.option.allure_report_dir = str(path)
    config.option.clean_alluredir = False
    config.stash[_RESULTS] = path
    categories.write(path, cause_categories())


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker writes into the directory the controller prepared."""
    path = node.config.stash.get(_RESULTS, None)
    if path is not None:
        node.workerinput["netconform_alluredir"] = str(path)


# ---------------------------------------------------------------- per run, on the controller


class _Collector:
    """Controller only: every test's verdict, for the matrix and --outcomes-json (xdist included)."""

    def __init__(self) -> None:
        self.run = RunVerdicts()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        diagnosis = Diagnosis.of(report)
        self.run.add(report, diagnosis.causes if diagnosis is not None else [])


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Before probes' sessionfinish deletes the namespace (environment reads the cluster, not the run)."""
    config = session.config
    collector = config.stash.get(_COLLECTOR, None)
    if collector is None or not is_controller(config):
        return
    lines: list[str] = []
    outcomes = config.getoption("outcomes_json")
    if outcomes:
        run = run_id(config) if is_active(config) else None
        write_outcomes(Path(outcomes), run, exitstatus, collector.run.outcomes)
        lines.append(f"outcomes in {outcomes}")
    results = config.stash.get(_RESULTS, None)
    if results is not None:
        if is_active(config) and _connected(config):
            try:
                lines.append(_write_environment(config, results))
            except Exception as exc:  # boundary: an unreadable cluster must not hide the results
                lines.append(f"environment.properties not written: {type(exc).__name__}: {error_text(exc)}")
        if collector.run.records:
            lines.append(_write_matrix(config, collector.run.records))
        lines.append(f"Allure results in {results}; HTML report: netconform report (ci/report in a clone)")
    config.stash[_SUMMARY] = lines


def _connected(config: pytest.Config) -> bool:
    try:
        get_cluster(config)
    except UsageError:
        return False
    return True


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash.get(_SUMMARY, []):
        terminalreporter.write_line(f"netconform: {line}")


def _matrix_path(config: pytest.Config) -> Path:
    given = config.getoption("matrix")
    return Path(given).resolve() if given else _reports_dir(config) / "matrix.svg"


def _write_matrix(config: pytest.Config, records: list[mx.Record]) -> str:
    try:
        nodes = [n.name for n in get_cluster(config).nodes]
    except UsageError:
        nodes = sorted({r.src for r in records})
    m = mx.build(nodes, records)
    run = run_id(config) if _connected(config) else "(no cluster)"
    svg = mx.render_svg(m, f"netconform run {run}: node x node")
    path = _matrix_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg)
    allure.global_attach(svg, "node x node matrix", allure.attachment_type.SVG)
    verdict = "all green" if m.all_passed else "some cells red"
    return f"matrix picture ({verdict}) in {path}"


def _write_environment(config: pytest.Config, results: Path) -> str:
    c = get_cluster(config)
    props = env.cluster_properties(
        context=c.context,
        server=c.server,
        version=c.version,
        nodes=c.all_nodes,
        selected=[n.name for n in c.nodes],
        kube_system=read_kube_system(
            c.api_client, daemonsets=c.permitted(LIST_DAEMONSETS), proxy_config=c.permitted(GET_KUBE_PROXY_CONFIG)
        ),
        node_rules=_node_rules(config),
        unreadable=bool(c.cannot_inspect),
        run_id=run_id(config),
    )
    (results / "environment.properties").write_text(env.render_properties(props))
    return f"environment: Kubernetes {props['Kubernetes.version']}, CNI {props['CNI']}, kube-proxy {props['kube-proxy.mode']}"


def _node_rules(config: pytest.Config) -> list[tuple[str, str, str]]:
    """(node, iptables-save, ip link) a diagnosis in this process read (serial runs; xdist workers keep theirs)."""
    return [(node, ne.text("iptables"), ne.text("link")) for node, ne in sorted(gathered_evidence(config).items())]
