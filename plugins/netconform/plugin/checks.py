"""`--list-checks`: what the suites check (netconform.checks), read from their source, with no cluster and no
connection."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from netconform.checks import CHECKS
from netconform.installed import suites_dir

__all__ = ["list_checks"]


def list_checks(directory: Path) -> list[str]:
    """`test_x.py: first docstring line` and each test's name for every check of the registry, by name, read
    from its suites/ module's source (no cluster, no import)."""
    lines = []
    for check in sorted(CHECKS, key=lambda c: c.name):
        path = directory / f"test_{check.name}.py"
        tree = ast.parse(path.read_text())
        doc = (ast.get_docstring(tree) or "").splitlines()
        lines.append(f"{path.name}: {doc[0] if doc else ''}")
        lines += [
            f"    {node.name}"
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        ]
    return lines


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netconform", "netconform: which cluster and nodes")
    group.addoption(
        "--list-checks", action="store_true", help="list what the suites check and exit (no cluster needed)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("list_checks"):
        return None
    print("\n".join(list_checks(suites_dir())))
    return 0
