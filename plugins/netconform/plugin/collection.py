"""Collection of netconform's tens of thousands of parametrized items without the cyclic garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Generator

import pytest

from netconform.plugin.session import is_active


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    """Collection without the cyclic garbage collector, whose objects are then frozen (gc.freeze).

    Every pytest item is a web of cycles (node <-> parent, keywords, stash), so while tens of thousands
    of them are made, each full collection walks all made so far: at 1000 nodes (44,000 items) that was
    about half of collection's CPU time, and pytest's own gc.collect() at the end walked them again.
    Items live until the session ends anyway; freezing them leaves them out of every later collection.
    """
    if not is_active(session.config) or not gc.isenabled():
        return (yield)
    gc.disable()
    try:
        return (yield)
    finally:
        gc.freeze()
        gc.enable()
