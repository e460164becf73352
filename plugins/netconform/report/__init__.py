"""The HTML report program (`ci/report`, `python -m netconform.report`): Allure results -> one
self-contained HTML file (Allure 3), checked the way a person would look at it, in headless Chromium."""

from .browser import BrowserError, Chromium, find_chromium
from .html import Rendered, ReportError, Seen, ensure_allure, ensure_chromium, look, render

__all__ = [
    "BrowserError",
    "Chromium",
    "ReportError",
    "Rendered",
    "Seen",
    "ensure_allure",
    "ensure_chromium",
    "find_chromium",
    "look",
    "render",
]
