"""Dependencies declared as they are used: every third-party import of the package is a declared
dependency (or its extra's), each with the plain `>=` floor ci/floors installs; metadata and LICENSE."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
FLOOR = re.compile(r"([A-Za-z0-9_.-]+)>=([0-9][^,;\s]*)")
# imported only where the extra is needed (a lazy import with the one sentence naming the extra)
EXTRA_OF = {"scapy": "capture", "testinfra": "node-access"}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(specs: list[str]) -> dict[str, str]:
    found = {}
    for spec in specs:
        m = FLOOR.fullmatch(spec)
        assert m, f"{spec!r}: ci/floors needs a plain `name>=version` floor"
        found[normal(m.group(1))] = m.group(2)
    return found


def third_party_imports() -> set[str]:
    """Top-level modules the package and the suites import that are neither stdlib nor netconform."""
    found = set()
    for path in [*(REPO / "plugins" / "netconform").rglob("*.py"), *(REPO / "suites").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("netconform", "_pytest", "suites")}


def test_every_third_party_import_is_declared_with_a_floor() -> None:
    runtime = declared(PROJECT["dependencies"])
    extras = {name: declared(PROJECT["optional-dependencies"][name]) for name in ("capture", "node-access")}
    dists = packages_distributions()
    for module in sorted(third_party_imports()):
        owners = {normal(d) for d in dists.get(module, [])}
        assert owners, f"{module}: imported but installed by no distribution"
        where = extras[EXTRA_OF[module]] if module in EXTRA_OF else runtime
        assert owners & set(where), f"{module} ({owners}) is imported but not declared in {sorted(where)}"
    assert "scapy" not in runtime and "pytest-testinfra" not in runtime  # optional: only their options need them
    assert runtime["kubernetes"] == "37.0"  # ApiClient.param_serialize (kube.connect) appears in 37.0.0


def test_the_dev_install_brings_both_extras() -> None:
    assert "netconform[capture,node-access]" in PROJECT["optional-dependencies"]["dev"]


def test_metadata_and_license() -> None:
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "Framework :: Pytest" in PROJECT["classifiers"]
    assert {"Homepage", "Source", "Issues"} <= set(PROJECT["urls"])
