"""The gate's state file: versioned, tied to its cluster, written atomically, and read back as one
sentence with its own exit code (4, not 1 "blocked") when it is truncated, null or not the gate's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netconform.gate import EXIT_USAGE, GateError
from netconform.gate import state as gate_state
from netconform.gate.__main__ import main as gate_main
from netconform.gate.exits import EXIT_BAD_STATE, EXIT_BLOCK
from netconform.gate.state import STATE_VERSION, Cluster, load_state, refuse_other_cluster, save_state

LAB = Cluster("https://10.0.0.1:6443", "8c1d-kube-system-uid")
DATA: dict[str, Any] = {
    "opened": 1.0,
    "selection": {"pairs": "all"},
    "holds": [],
    "nodes": ["a", "b"],
    "pods": {},
    "established": [],
    "baseline": {},
}


def test_the_state_says_its_version_and_cluster_and_reads_back(tmp_path: Path) -> None:
    save_state(tmp_path, DATA, LAB)
    raw = json.loads((tmp_path / "gate.json").read_text())
    assert raw["version"] == STATE_VERSION and raw["cluster"] == {
        "server": LAB.server,
        "kube_system_uid": LAB.uid,
    }
    state = load_state(tmp_path)
    refuse_other_cluster(tmp_path, state, LAB)  # same cluster: nothing said
    assert state["nodes"] == ["a", "b"]
    assert os.listdir(tmp_path) == ["gate.json"]  # no temporary file left


def test_a_baseline_of_another_cluster_is_refused_in_one_sentence(tmp_path: Path) -> None:
    save_state(tmp_path, DATA, LAB)
    other = Cluster("https://10.0.0.1:6443", "another-uid")  # same URL, another cluster behind it
    with pytest.raises(GateError) as err:
        refuse_other_cluster(tmp_path, load_state(tmp_path), other)
    assert err.value.code == EXIT_USAGE and "\n" not in str(err.value)
    assert "was taken on another cluster" in str(err.value) and "another-uid" in str(err.value)


def test_a_failed_write_keeps_the_old_state_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_state(tmp_path, DATA, LAB)
    before = (tmp_path / "gate.json").read_text()

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gate_state.os, "replace", crash)
    with pytest.raises(OSError):
        save_state(tmp_path, {**DATA, "nodes": ["c"]}, LAB)
    assert (tmp_path / "gate.json").read_text() == before and os.listdir(tmp_path) == ["gate.json"]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "not JSON at line 1 column 1 (truncated?)"),
        (json.dumps({"version": STATE_VERSION, **DATA}).encode()[:40], "not JSON"),
        (b"null", "a JSON null, not an object"),
        (b"[1, 2]", "a JSON array, not an object"),
        (b"\xff\xfe\x00binary", "not UTF-8 text"),
        (b"[" * 100_000, "nested too deeply"),
        (json.dumps({"version": STATE_VERSION}).encode(), "damaged: no opened, selection"),
        (json.dumps({"version": STATE_VERSION, **DATA, "cluster": "lab"}).encode(), "its cluster is not"),
    ],
    ids=["empty", "truncated", "null", "array", "binary", "deep", "fields", "cluster"],
)
def test_a_damaged_state_is_one_sentence_with_its_own_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, said: str
) -> None:
    (tmp_path / "gate.json").write_bytes(content)
    code = gate_main(["check", "--state", str(tmp_path)])  # the file is read before any API call
    err = capsys.readouterr().err
    assert code == EXIT_BAD_STATE == 4 and code != EXIT_BLOCK
    assert said in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_state_without_a_version_is_an_older_netconforms(tmp_path: Path) -> None:
    (tmp_path / "gate.json").write_text(json.dumps(DATA))
    with pytest.raises(GateError) as err:
        load_state(tmp_path)
    assert err.value.code == EXIT_USAGE and "an older netconform (state version 1" in str(err.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(list(DATA)), inner),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_fuzz_any_state_file_reads_back_or_is_one_sentence(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "gate.json").write_bytes(content)
    try:
        load_state(tmp_path)
    except GateError as exc:
        assert exc.code in (EXIT_USAGE, EXIT_BAD_STATE) and "\n" not in str(exc)
