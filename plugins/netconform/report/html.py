"""Render the Allure results as one self-contained HTML file (Allure 3, awesome plugin, single file),
and check the rendered report the way a person would: in a browser (see browser.py).

Allure 3 comes from the npm registry on first use, pinned by the package-lock.json shipped in the
package (netconform/report/allure/), installed with `npm ci` (exactly the locked tree, integrity
hashes checked) into the user's cache: `$NETCONFORM_TOOLS_DIR`, else
`${XDG_CACHE_HOME:-~/.cache}/netconform/allure-<lock hash>`. Not shipped: Allure 3 and its
dependencies are tens of MB of JavaScript that only the report needs; not beside site-packages (a
venv may be read-only or shared) nor in the working directory (one install serves every run).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from netconform.diagnose import cause_categories
from netconform.reporting.categories import allure_categories

from .browser import BrowserError, Chromium, find_chromium

__all__ = ["ReportError", "Rendered", "Seen", "ensure_allure", "ensure_chromium", "look", "render"]

T = TypeVar("T")
PINS = Path(__file__).resolve().parent / "allure"  # package.json + package-lock.json, package data
INSTALL_TIMEOUT_S = 600
GENERATE_TIMEOUT_S = 300


class ReportError(Exception):
    """One sentence for the user; ci/report exits non-zero with it."""


# ---------------------------------------------------------------- install


def tools_dir(pins: Path = PINS) -> Path:
    """Where Allure is installed: one directory per lock file, in the user's cache."""
    given = os.environ.get("NETCONFORM_TOOLS_DIR")
    if given:
        return Path(given)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "netconform" / f"allure-{_lock_sha(pins)[:12]}"


def _lock_sha(pins: Path) -> str:
    lock = pins / "package-lock.json"
    if not lock.is_file():
        raise ReportError(f"{lock} is missing: it pins the Allure version the report installs")
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def _allure_cli(tools: Path) -> Path:
    return tools / "node_modules" / "allure" / "cli.js"


def ensure_allure(tools: Path | None = None, pins: Path = PINS) -> Path:
    """`npm ci` of the shipped lock into `tools` when node_modules is missing or from another lock."""
    want = _lock_sha(pins)
    tools = tools or tools_dir(pins)
    stamp = tools / "node_modules" / ".netconform-lock-sha256"
    if _allure_cli(tools).is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return _allure_cli(tools)
    tools.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(pins / name, tools / name)
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise ReportError("node and npm are needed to install Allure 3 (Debian: apt-get install nodejs npm)")
    cmd = ["nice", "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(cmd, cwd=tools, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ReportError(f"npm ci in {tools} did not finish within {INSTALL_TIMEOUT_S}s") from None
    if done.returncode != 0 or not _allure_cli(tools).is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ReportError(f"npm ci in {tools} failed: {tail[0]}")
    stamp.write_text(want + "\n")
    return _allure_cli(tools)


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (the only browser source here)."""
    found = find_chromium()
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise ReportError("no chromium and no apt-get: install Chromium and put it on PATH")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
    ):
        try:
            done = subprocess.run(["nice", *cmd], capture_output=True, text=True, timeout=900, env=env)
        except subprocess.TimeoutExpired:
            raise ReportError(f"{' '.join(cmd)} did not finish within 900s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ReportError(f"{' '.join(cmd)} failed: {tail[0]}")
    found = find_chromium()
    if not found:
        raise ReportError("apt-get installed chromium but no chromium binary is on PATH")
    return found


# ---------------------------------------------------------------- generate


def allure_config(name: str, output: Path, categories: list[dict[str, Any]], history: Path | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": name,
        "output": str(output),
        "plugins": {
            "awesome": {
                "options": {
                    "singleFile": True,
                    "reportName": name,
                    "groupBy": ["epic", "feature"],  # network path, then case: how an operator looks
                }
            }
        },
        "categories": {"rules": categories},
    }
    if history is not None:
        config["historyPath"] = str(history)
    return config


@dataclass
class Rendered:
    html: Path
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {name, status}
    seconds: float = 0.0
    with_pcap: set[str] = field(default_factory=set)  # names of failed tests that carry a capture

    def failed(self) -> list[dict[str, Any]]:
        return [t for t in self.tests.values() if t.get("status") == "failed"]


def render(results: Path, output: Path, name: str = "netconform", history: Path | None = None) -> Rendered:
    """Allure results directory -> one HTML file at `output`."""
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise ReportError(f"no Allure results in {results}: run the suite first (netconform run, or pytest suites/)")
    cli = ensure_allure()
    categories = allure_categories(cause_categories())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nc-allure-") as tmp:
        out = Path(tmp) / "report"
        cfg = Path(tmp) / "allurerc.json"
        cfg.write_text(json.dumps(allure_config(name, out, categories, history), indent=2))
        cmd = ["nice", "node", str(cli), "generate", "--config", str(cfg), str(results.resolve())]
        try:
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=GENERATE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ReportError(f"allure generate did not finish within {GENERATE_TIMEOUT_S}s") from None
        index = out / "index.html"
        if done.returncode != 0 or not index.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ReportError(f"allure generate failed (exit {done.returncode}): {tail[0]}")
        tests: dict[str, dict[str, Any]] = {}
        listing = out / "test-results.json"
        if listing.is_file():
            tests = json.loads(listing.read_text()).get("byId", {})
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(index, output)
    return Rendered(output.resolve(), tests, round(time.monotonic() - started, 2), _captured_tests(results))


def _captured_tests(results: Path) -> set[str]:
    """Failed tests with a pcap attachment (diagnosis captures once per cause, not for every failure)."""
    names = set()
    for path in results.glob("*-result.json"):
        try:
            r = json.loads(path.read_text())
        except ValueError:
            continue
        if r.get("status") == "failed" and any(
            a.get("name", "").startswith("capture on") for a in r.get("attachments", [])
        ):
            names.add(r.get("name", ""))
    return names


# ---------------------------------------------------------------- look at it


@dataclass
class Seen:
    """What the browser showed, for the test and for ci/report --check."""

    overview: str = ""
    failed_test: str = ""
    diagnosis: str = ""
    matrix_px: tuple[int, int] = (0, 0)
    problems: list[str] = field(default_factory=list)


MATRIX_NAME = "node x node matrix"
EPICS = ("Pod to pod",)  # every run has it unless -k leaves it out; pass more to look() to insist


def pick_failed(rendered: Rendered) -> dict[str, Any] | None:
    """A failed test with a capture, else a failed TCP cross-node pod-to-pod test, else any failed test."""
    failed = sorted(rendered.failed(), key=lambda t: t.get("name", ""))
    captured = [t for t in failed if t.get("name") in rendered.with_pcap]
    preferred = [t for t in failed if "cross_node" in t.get("name", "") and "tcp" in t.get("name", "")]
    chosen = captured or preferred or failed
    return chosen[0] if chosen else None


def _twice(step: Callable[[bool], T]) -> T:
    """A step of the look: first by the app's own hash navigation (fast), and once more after a fresh
    load of the page if that missed (a single-page app on a busy machine sometimes misses a hash
    change). A second miss is the report's fault and is reported."""
    try:
        return step(False)
    except BrowserError:
        return step(True)


def _goto(b: Chromium, url: str, fresh: bool) -> None:
    if fresh:
        b.open("about:blank")
        b.wait_for("location.href === 'about:blank'", 10, "a blank page")
    b.open(url)
    if fresh:
        b.wait_for_text("Results", 120)  # the whole report is loaded again


def _open_diagnosis(b: Chromium, url: str, fresh: bool) -> None:
    _goto(b, url, fresh)
    b.wait_for_text("root cause:")
    b.click_text("diagnosis")
    b.wait_for_text("most likely:")


def _open_matrix(b: Chromium, url: str, fresh: bool) -> Any:
    _goto(b, url, fresh)
    b.wait_for_text(MATRIX_NAME)
    b.click_text(MATRIX_NAME)
    return b.wait_for(
        "(() => { const i = [...document.querySelectorAll('img')].find(i => i.offsetParent !== null"
        " && i.naturalWidth > 200); return i ? [i.naturalWidth, i.naturalHeight] : null; })()",
        20,
        "the matrix picture",
    )


def look(
    rendered: Rendered,
    screenshots: dict[str, Path] | None = None,
    browser: Any = None,
    epics: tuple[str, ...] = EPICS,
) -> Seen:
    """Open the report in headless Chromium: overview lists the tests, a failed test shows its diagnosis,
    Global Attachments shows the matrix picture. Screenshot keys: overview, failed, matrix."""
    shots = screenshots or {}
    seen = Seen()
    url = rendered.html.as_uri()
    with browser or Chromium(height=1100) as b:
        try:
            b.open(url)
            b.wait_for_text("Results", 120)  # 4-5 MB of inlined app and data: slow on a busy 2-core machine
            for epic in epics:
                b.wait_for_text(epic, 10)
            seen.overview = b.text()
            if "overview" in shots:
                b.screenshot(shots["overview"])
            test = pick_failed(rendered)
            if test is not None:
                _twice(lambda fresh: _open_diagnosis(b, f"{url}#/{test['id']}", fresh))
                seen.failed_test = test["name"]
                seen.diagnosis = b.text()
                if "failed" in shots:
                    b.evaluate("window.scrollTo(0, 0)")
                    b.screenshot(shots["failed"])
            size = _twice(lambda fresh: _open_matrix(b, f"{url}#/globalAttachments", fresh))
            seen.matrix_px = (int(size[0]), int(size[1]))
            if "matrix" in shots:
                b.screenshot(shots["matrix"])
        except BrowserError as exc:
            seen.problems.append(str(exc))
    return seen
