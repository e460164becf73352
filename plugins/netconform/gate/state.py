"""The gate's state file (gate.json): versioned, tied to the cluster it was taken on, written atomically,
and read back as one sentence when it is not what `baseline` wrote."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import prog
from .exits import EXIT_BAD_STATE, EXIT_USAGE, GateError

__all__ = ["STATE_FILE", "STATE_VERSION", "Cluster", "load_state", "refuse_other_cluster", "save_state"]

STATE_FILE = "gate.json"
STATE_VERSION = 2  # 1: no version field (one pod per connection, or no cluster identity)
MAX_STATE_BYTES = 64 * 1024 * 1024  # far above any plan the gate accepts; a bigger file is not ours
_FIELDS = ("opened", "selection", "holds", "nodes", "pods", "established", "baseline", "cluster")


@dataclass(frozen=True)
class Cluster:
    """Which cluster a baseline was taken on: the API server (no userinfo) and kube-system's UID, which
    a cluster keeps for its life and another cluster does not share, whatever its URL or context name."""

    server: str
    uid: str

    def to_dict(self) -> dict[str, str]:
        return {"server": self.server, "kube_system_uid": self.uid}

    @staticmethod
    def from_dict(data: object) -> Cluster | None:
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("server", "kube_system_uid")):
            return None
        return Cluster(data["server"], data["kube_system_uid"])


def save_state(state_dir: Path, data: dict[str, Any], cluster: Cluster) -> None:
    """Write gate.json atomically: a crash mid-write leaves the old file or none, never half of one."""
    state_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": STATE_VERSION, **data, "cluster": cluster.to_dict()}, indent=1)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=f".{STATE_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state_dir / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(state_dir: Path) -> dict[str, Any]:
    """The baseline's state, checked before any API call: present, readable, this version, complete."""
    path = state_dir / STATE_FILE
    if not path.is_file():
        raise GateError(f"no gate state in {state_dir}: run {prog.command('baseline')} first", EXIT_USAGE)
    state = _read(path)
    version = state.get("version")
    if version != STATE_VERSION:
        older = version is None or (isinstance(version, int) and version < STATE_VERSION)
        raise GateError(
            f"the gate state {path} was written by {'an older' if older else 'another'} netconform "
            f"(state version {version if version is not None else 1}, this one reads {STATE_VERSION}): "
            f"{prog.command('close')}, then {prog.command('baseline')} again",
            EXIT_USAGE,
        )
    missing = [k for k in _FIELDS if k not in state]
    if missing:
        raise GateError(f"the gate state {path} is damaged: no {', '.join(missing)}", EXIT_BAD_STATE)
    if Cluster.from_dict(state["cluster"]) is None:
        raise GateError(f"the gate state {path} is damaged: its cluster is not a server and a UID", EXIT_BAD_STATE)
    return state


def refuse_other_cluster(state_dir: Path, state: dict[str, Any], cluster: Cluster) -> None:
    """One sentence when the baseline in `state` (from load_state) was taken on another cluster."""
    path = state_dir / STATE_FILE
    taken_on = Cluster.from_dict(state["cluster"])
    if taken_on is not None and taken_on.uid != cluster.uid:
        raise GateError(
            f"the gate state {path} was taken on another cluster ({taken_on.server}, kube-system {taken_on.uid}), "
            f"not this one ({cluster.server}, kube-system {cluster.uid}): check against the cluster of the "
            "baseline, or give its --state",
            EXIT_USAGE,
        )


def _read(path: Path) -> dict[str, Any]:
    """gate.json as a JSON object; every other content is one sentence (EXIT_BAD_STATE)."""
    damaged = f"the gate state {path} is damaged"
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            raise GateError(f"{damaged}: larger than {MAX_STATE_BYTES >> 20} MiB", EXIT_BAD_STATE)
        raw = path.read_bytes()
    except OSError as exc:
        raise GateError(f"cannot read the gate state {path}: {exc.strerror or exc}", EXIT_BAD_STATE) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise GateError(f"{damaged}: not UTF-8 text", EXIT_BAD_STATE) from None
    except RecursionError:
        raise GateError(f"{damaged}: nested too deeply", EXIT_BAD_STATE) from None
    except ValueError as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise GateError(f"{damaged}: not JSON{where} (truncated?)", EXIT_BAD_STATE) from None
    if not isinstance(data, dict):
        kind = "null" if data is None else {list: "array", str: "string", bool: "boolean"}.get(type(data), "number")
        raise GateError(f"{damaged}: a JSON {kind}, not an object", EXIT_BAD_STATE)
    return data
