"""What the xdist workers of one run share: a directory, and results computed once under a file lock."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock, Timeout

from netconform.workload.labels import namespace_name

__all__ = ["fail_run", "once_per_run", "shared_dir"]


def shared_dir(tmp_path_factory: pytest.TempPathFactory, run: str) -> Path:
    """The directory every xdist worker of this run sees (the parent of each worker's basetemp)."""
    path = tmp_path_factory.getbasetemp().parent / namespace_name(run)
    path.mkdir(parents=True, exist_ok=True)
    return path


def once_per_run(
    directory: Path, key: str, compute: Callable[[], dict[str, Any]], wait_s: float, what: str
) -> dict[str, Any]:
    """First caller computes under a FileLock and writes JSON; later callers (other workers) read it.

    An error is shared the same way ({"error": ...}), so N workers do not each wait out the same timeout.
    """
    path = directory / f"{key}.json"
    try:
        with FileLock(str(path) + ".lock", timeout=wait_s):
            if path.is_file():
                data: dict[str, Any] = json.loads(path.read_text())
                return data
            data = compute()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(path)
            return data
    except Timeout:
        return {"error": f"waited {wait_s:.0f}s for another xdist worker to finish {what} (lock {path}.lock)"}


def fail_run(request: pytest.FixtureRequest, error: str) -> None:
    """Error this test and stop the session: every other test would repeat the same setup error."""
    request.session.shouldstop = f"netconform: {error}"
    pytest.fail(f"netconform: {error}", pytrace=False)
