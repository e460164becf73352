"""pytest plugin (-p fakeexec) for pytester runs: `probe dial` answered by the fake API's /fake/dial.

The real transport is a websocket exec into a container; everything around it (planning, parsing,
retry, caching, xdist sharing, reporting) runs unchanged.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def fake_exec(configuration: Any, namespace: str, pod: str, spec: dict[str, Any], wait_s: float) -> str:
    from plugins.cluster import CountingApiClient
    from plugins.errors import ProbeRunError

    CountingApiClient.count_exec()
    request = urllib.request.Request(
        configuration.host + "/fake/dial",
        data=json.dumps({"namespace": namespace, "pod": pod, "spec": spec}).encode(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=wait_s) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise ProbeRunError(f"exec failed: {exc.code} {exc.read().decode()}") from None


def pytest_configure(config: Any) -> None:
    # imported here, after conftest.py registered the plugins, so pytest can still rewrite their asserts
    import plugins.dial

    plugins.dial.exec_probe = fake_exec
