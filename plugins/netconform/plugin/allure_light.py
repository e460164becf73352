"""allure-pytest made lighter per test, on allure's (and pytest's) private internals.

A passed suite test then writes one file, its result: no fixture container per parametrize argument or
per-test view fixture, files written off the main thread, a passed dial step's facts as the step's
parameters instead of an attachment. All of it leans on internals that another allure version may not
have, so netconform.plugin.reporting_per_test registers `AllureLight` only when `missing()` is empty (as
pytest-randomly registers its xdist hooks only when xdist is there); otherwise allure runs as shipped
and the report is the same but for the extra files.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import uuid
from collections.abc import Generator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import allure_commons
import attr
import pytest
from allure_commons.logger import INDENT, AllureFileLogger
from allure_commons.model2 import TestResultContainer
from allure_pytest.listener import AllureListener

from netconform.plugin.reporting import allure_on
from netconform.plugin.session import wants_cluster

try:  # private: a version without them keeps allure's own listener, logger and steps
    from _pytest.python import get_direct_param_fixture_func
    from allure_commons._allure import StepContext
    from allure_pytest.listener import _test_fixtures
except ImportError as exc:  # depends on the installed allure and pytest
    IMPORT_ERROR: str | None = str(exc)
else:
    IMPORT_ERROR = None

__all__ = ["NAME", "NO_CONTAINER", "AllureLight", "missing", "of"]

NAME = "netconform-allure-light"

# Function-scoped fixtures reported without a fixture container of their own: our per-test views of
# session data (netconform.plugin.dial). Their set-up is a lookup, and a container file per test would
# say only "src: passed"; a set-up failure still shows on the test (allure-pytest takes the test's status
# and message from the setup report). The session fixtures they read (`probes`, `dials`, ...) keep theirs.
NO_CONTAINER = frozenset({"src", "host_dials"})

# the methods of allure's classes overridden or called below
_METHODS = (
    (AllureListener, ("pytest_fixture_setup", "_update_fixtures_children")),
    (AllureFileLogger, ("_report_item", "report_attached_data")),
)


def missing() -> list[str]:
    """The internals this module uses that the installed allure and pytest lack; empty: it can run."""
    if IMPORT_ERROR is not None:
        return [IMPORT_ERROR]
    gone = [f"{cls.__name__}.{name}" for cls, names in _METHODS for name in names if not hasattr(cls, name)]
    return gone + ([] if hasattr(allure_commons, "plugin_manager") else ["allure_commons.plugin_manager"])


def of(config: pytest.Config) -> AllureLight | None:
    """The registered AllureLight, or None: this allure lacks what it needs."""
    plugin = config.pluginmanager.get_plugin(NAME)
    return plugin if isinstance(plugin, AllureLight) else None


class AllureLight:
    """The pytest plugin: swaps allure's own listener and file logger for the lighter ones below."""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Runs of the cluster suite only: other tests of a project with netconform installed keep allure as is."""
        config = session.config
        if wants_cluster(config) and allure_on(config):
            _lighten_allure(config)

    @staticmethod
    def step(title: str, params: dict[str, str]) -> AbstractContextManager[Any]:
        """An Allure step that shows `params` as its parameters (allure.step takes a title only)."""
        return StepContext(title, params)


class _Listener(AllureListener):
    """allure-pytest's listener without a fixture container per parametrize argument or NO_CONTAINER fixture.

    allure-pytest reports every fixture set-up of a test as a container file of its own, also the pseudo
    fixtures pytest makes for `@pytest.mark.parametrize`/metafunc.parametrize arguments (`dst`, `family`),
    whose value is already the test's parameter, and `src`/`host_dials` (NO_CONTAINER). Other fixtures
    (the session's `probes`, `dials`, ...) are reported as before."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, Any, None]:
        if fixturedef.func is get_direct_param_fixture_func or fixturedef.argname in NO_CONTAINER:
            yield
            return
        yield from super().pytest_fixture_setup(fixturedef, request)

    def _update_fixtures_children(self, item: pytest.Item) -> None:
        """allure-pytest's own, less NO_CONTAINER (it would start a container for a fixture it did not see set up)."""
        uuid = self._cache.get(item.nodeid)
        for fixturedef in _test_fixtures(item):
            if fixturedef.argname in NO_CONTAINER:
                continue
            group_uuid = self._cache.get(fixturedef)
            if group_uuid:
                group = self.allure_logger.get_item(group_uuid)
            else:
                group_uuid = self._cache.push(fixturedef)
                group = TestResultContainer(uuid=group_uuid)
                self.allure_logger.start_group(group_uuid, group)
            if uuid not in group.children:
                self.allure_logger.update_group(group_uuid, children=uuid)


class _Writer:
    """Writes allure's files on a thread of its own, in the order given: creating a file is a metadata
    operation of the file system that took 0.1-0.9 ms here (more while other work writes to the disk),
    a file per passed test, and a thread in a system call does not hold the interpreter's lock, so the
    tests go on meanwhile. Each file is written in place, as allure's own AllureFileLogger does (no
    temporary name and rename: that was a second metadata operation per file; Allure reads the directory
    after the run, when `close` has returned). `close` (at the end of the run, bounded) waits until
    every file is written."""

    WAIT_S = 120.0

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Path, bytes] | None] = queue.SimpleQueue()
        self.failed: list[str] = []
        self._thread = threading.Thread(target=self._run, name="allure-writer", daemon=True)
        self._thread.start()

    def put(self, path: Path, data: bytes) -> None:
        self._queue.put((path, data))

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            path, data = job
            try:
                path.write_bytes(data)
            except OSError as exc:
                self.failed.append(f"{path.name}: {exc.strerror or exc}")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(self.WAIT_S)
        if self._thread.is_alive():
            print(f"netconform: Allure results still being written after {self.WAIT_S:.0f}s", file=sys.stderr)
        elif self.failed:
            print(f"netconform: {len(self.failed)} Allure files not written, e.g. {self.failed[0]}", file=sys.stderr)


class _FileLogger(AllureFileLogger):
    """allure-commons' writer, the same bytes: serialized here (json.dumps, in C; json.dump to a file
    encodes in pure Python), written by a _Writer."""

    writer: _Writer

    @classmethod
    def adopt(cls, logger: AllureFileLogger) -> _FileLogger:
        """allure's own logger, now this class, with a writer of its own."""
        logger.__class__ = cls
        assert isinstance(logger, cls)
        logger.writer = _Writer()
        return logger

    def _report_item(self, item: Any) -> None:
        indent = INDENT if os.environ.get("ALLURE_INDENT_OUTPUT") else None
        filename = item.file_pattern.format(prefix=uuid.uuid4())
        data = attr.asdict(item, filter=lambda _, v: v or v is False)
        self.writer.put(self._report_dir / filename, json.dumps(data, indent=indent, ensure_ascii=False).encode())

    @allure_commons.hookimpl
    def report_attached_data(self, body: str | bytes, file_name: str) -> None:
        self.writer.put(self._report_dir / file_name, body.encode() if isinstance(body, str) else body)


def _lighten_allure(config: pytest.Config) -> None:
    """Swap in _Listener and _FileLogger (exactly allure-pytest's own classes only: another version or a
    subclass someone registered is left alone); hooks are bound when registered, hence re-registered."""
    listener = config.pluginmanager.get_plugin("allure_listener")
    if type(listener) is AllureListener:
        config.pluginmanager.unregister(listener)
        listener.__class__ = _Listener
        config.pluginmanager.register(listener, "allure_listener")
    manager = allure_commons.plugin_manager
    for plugin in manager.get_plugins():
        if type(plugin) is AllureFileLogger:
            name = manager.get_name(plugin)
            manager.unregister(plugin)
            light = _FileLogger.adopt(plugin)
            config.add_cleanup(light.writer.close)  # before allure's own cleanup, which unregisters it
            manager.register(light, name)
