"""pytest plugin: a JUnit file even when the run cannot start.

When the preflight refuses the run (no cluster, no permission, no node: pytest exits 4 from
`pytest_sessionstart`), pytest never reaches the hooks that write `--junitxml`, and a CI system
(Sonobuoy's done file, a test-report upload) then finds no file at all. This writes one holding the
one error, through pytest's own junitxml writer, so its format and options stay pytest's.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest
from _pytest.junitxml import xml_key  # the writer --junitxml registered (pytest has no public handle)

__all__ = ["PREFLIGHT_NODEID", "write_error"]

PREFLIGHT_NODEID = "netconform::preflight"  # JUnit: classname "netconform", name "preflight"


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session: pytest.Session) -> Generator[None, None, None]:
    try:
        return (yield)
    except pytest.UsageError as exc:
        write_error(session.config, str(exc))
        raise


def write_error(config: pytest.Config, message: str) -> None:
    """Write the --junitxml file (if asked for) with one test case in error: `message`."""
    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    location = ("netconform", None, "preflight")
    failed = pytest.TestReport(PREFLIGHT_NODEID, location, {}, "failed", message, "setup")
    done = pytest.TestReport(PREFLIGHT_NODEID, location, {}, "passed", None, "teardown")
    xml.pytest_sessionstart()
    xml.pytest_runtest_logreport(failed)
    xml.pytest_runtest_logreport(done)
    xml.pytest_sessionfinish()
