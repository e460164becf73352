"""Where the installed package keeps its suites, and whether a pytest run names them.

Standard library only: the pytest11 entry point (netconform.plugin) asks this in every pytest session
of the venv, before it decides whether to load anything of netconform's; the gate and the CLI find
the suites here too, so a wheel install works like a clone.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SUITES_PACKAGE", "names_suites", "suites_dir"]

SUITES_PACKAGE = "netconform.suites"


def suites_dir() -> Path:
    """Where the suites are: suites/ of a clone (editable install) or netconform/suites of a wheel."""
    spec = importlib.util.find_spec(SUITES_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]).resolve() if locations else Path("suites").resolve()


def _walks_into(parent: Path, suites: Path) -> bool:
    """Whether pytest collecting `parent` reaches `suites`: it never recurses into a virtualenv or a
    dot directory, so a project's `pytest .` does not collect the suites of the venv inside it."""
    for below in [suites, *suites.parents]:
        if below == parent:
            return True
        if below.name.startswith(".") or (below / "pyvenv.cfg").is_file():
            return False
    return False


def names_suites(args: Sequence[str], pyargs: bool, invocation_dir: Path, suites: Path) -> bool:
    """True when these pytest arguments (paths, or module names under --pyargs) collect the suites."""
    for arg in args:
        target = str(arg).split("::")[0]
        if pyargs and (target == SUITES_PACKAGE or target.startswith(SUITES_PACKAGE + ".")):
            return True
        path = (invocation_dir / target).resolve()
        if path == suites or suites in path.parents or _walks_into(path, suites):
            return True
    return False
