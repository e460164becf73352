"""Which images the workload runs, and how a mirror or an override rewrites them."""

from __future__ import annotations

__all__ = ["DEFAULT_IMAGES", "image_ref"]

# The probe's tag follows the package version (tests/unit checks it against pyproject.toml).
DEFAULT_IMAGES = {
    "probe": "ghcr.io/netconform/probe:0.1.0",
    "agent": "docker.io/nicolaka/netshoot:v0.13",
}


def image_ref(default: str, repo: str | None, override: str | None) -> str:
    """An explicit image wins; a mirror repo keeps only the last path element (name:tag)."""
    if override:
        return override
    if repo:
        return f"{repo.rstrip('/')}/{default.rsplit('/', 1)[-1]}"
    return default
