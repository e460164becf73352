"""Headless Chromium driven over the DevTools protocol on loopback: open the report, click, read, screenshot.

Why not chromedriver/playwright: Debian's `chromium` plus websocket-client (already installed with
the kubernetes client) is all it takes. The flags keep Chromium off the network: no QUIC, no
background fetches, no component updates or sync, a fresh profile every time.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

__all__ = ["BrowserError", "Chromium", "find_chromium"]

QUIET_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
START_TIMEOUT_S = 30.0


class BrowserError(Exception):
    """Chromium could not be started or did not do what was asked; str() is one sentence."""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser with one page. Use as a context manager; every wait is bounded."""

    def __init__(self, binary: str | None = None, width: int = 1400, height: int = 1000) -> None:
        found = binary or find_chromium()
        if not found:
            raise BrowserError("no chromium binary found (install Debian's `chromium`: ci/report --install-browser)")
        self.binary: str = found
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="nc-chromium-")
        self._proc: subprocess.Popen[str] | None = None
        self._ws: Any = None
        self._id = 0

    def __enter__(self) -> Chromium:
        self._proc = subprocess.Popen(
            [
                self.binary,
                *QUIET_FLAGS,
                f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = self._devtools_port()
        page = self._page_ws(port)
        self._ws = websocket.create_connection(page, timeout=START_TIMEOUT_S, suppress_origin=True)
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._ws is not None:
                self._ws.close()
        finally:
            if self._proc is not None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=5)
            shutil.rmtree(self._profile, ignore_errors=True)

    def _devtools_port(self) -> int:
        assert self._proc is not None and self._proc.stderr is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        seen = []
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if not line:
                if self._proc.poll() is not None:
                    break
                continue
            seen.append(line.strip())
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                return int(match.group(1))
        tail = "; ".join(seen[-3:]) or "no output"
        raise BrowserError(f"chromium did not open its DevTools port within {START_TIMEOUT_S:.0f}s: {tail}")

    def _page_ws(self, port: int) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
                targets = json.loads(resp.read())
            for t in targets:
                if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                    return str(t["webSocketDebuggerUrl"])
            time.sleep(0.2)
        raise BrowserError("chromium has no page target")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        mine = self._id
        self._ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                msg = json.loads(self._ws.recv())
            except websocket.WebSocketException as exc:  # a timeout or a closed page: one sentence
                raise BrowserError(f"{method}: the browser did not answer ({exc.__class__.__name__})") from exc
            if msg.get("id") == mine:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
        raise BrowserError(f"{method}: no answer within {START_TIMEOUT_S:.0f}s")

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise BrowserError(f"script failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout_s: float = 20.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except BrowserError:
                value = None
            if value:
                return value
            time.sleep(0.25)
        raise BrowserError(f"waited {timeout_s:.0f}s for {what or expression}")

    def wait_for_text(self, needle: str, timeout_s: float = 60.0) -> None:
        self.wait_for(
            f"document.body && document.body.innerText.includes({json.dumps(needle)})", timeout_s, repr(needle)
        )

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def click_text(self, text: str, timeout_s: float = 10.0) -> None:
        """Click the innermost visible element whose own text is `text` (e.g. a tab or an attachment name)."""
        script = f"""(() => {{
            const want = {json.dumps(text)};
            const all = [...document.querySelectorAll('body *')].filter(e =>
                e.offsetParent !== null && e.textContent.trim() === want);
            const leaf = all.filter(e => ![...e.children].some(c => c.textContent.trim() === want));
            if (!leaf.length) return false;
            leaf[0].scrollIntoView({{block: 'center'}});
            leaf[0].click();
            return true;
        }})()"""
        self.wait_for(script, timeout_s, f"a clickable {text!r}")

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 4000), "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
