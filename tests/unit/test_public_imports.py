"""suites/ and ci/'s Python use only netconform's public names: no module or name with a leading underscore.

What import-linter cannot see (pyproject.toml [tool.importlinter] has the module contracts): a private
name imported from a public module (`from netconform.x import _y`), one reached as an attribute
(`x._y`), and ci/'s scripts without a .py suffix. ci/lint runs this file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "netconform"


def checked_files() -> list[Path]:
    """suites/, ci/'s libraries, and ci/'s python3 scripts (no suffix, a python shebang)."""
    files = sorted((REPO / "suites").rglob("*.py"))
    for lib in ("lablib", "simlib", "hostlib"):
        files += sorted((REPO / "ci" / lib).rglob("*.py"))
    files += sorted(p for p in (REPO / "ci").iterdir() if p.is_file() and not p.suffix and _python_script(p))
    return files


def _python_script(path: Path) -> bool:
    first = path.read_bytes()[:128].split(b"\n")[0]
    return first.startswith(b"#!") and b"python" in first


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list[str]:
    """Each use of a private netconform module or name in `source`, as `line N: what`."""
    found: list[str] = []
    bound: set[str] = set()  # local names bound to a netconform module or name
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != PACKAGE:
                    continue
                if any(_private(part) for part in alias.name.split(".")):
                    found.append(f"line {node.lineno}: import {alias.name}")
                bound.add(alias.asname or PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != PACKAGE:
                continue
            if any(_private(part) for part in node.module.split(".")):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                bound.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in bound:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return sorted(set(found), key=lambda s: int(s.split()[1].rstrip(":")))


def test_the_checked_files_include_the_suites_the_lab_and_the_scripts() -> None:
    names = {p.relative_to(REPO).as_posix() for p in checked_files()}
    assert {"suites/test_dns.py", "ci/lablib/faults.py", "ci/simlib/bench.py", "ci/lab", "ci/gate"} <= names


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_only_public_names_of_the_package(path: Path) -> None:
    uses = private_uses(path.read_text())
    assert not uses, f"{path.relative_to(REPO)} uses netconform's private names: " + "; ".join(uses)


def test_a_private_import_is_found() -> None:
    seeded = (
        "import json\n"
        "from netconform.diagnose.rules import _util\n"
        "from netconform.dialing.plan import _hairpin, pod_target\n"
        "import netconform.diagnose.rules._util as u\n"
        "from netconform.kube import inventory\n"
        "x = inventory._cache + json._default_decoder\n"
        "from netconform import __version__\n"
    )
    assert private_uses(seeded) == [
        "line 2: from netconform.diagnose.rules import _util",
        "line 3: from netconform.dialing.plan import _hairpin",
        "line 4: import netconform.diagnose.rules._util",
        "line 6: inventory._cache",
    ]
