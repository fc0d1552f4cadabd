"""sovereign templates for the peer benchmark (imported by sovereign from bench/.peer-venv, not by tcpmesh).

The resources are rendered by tcpmesh once, ahead of time, into $PEER_RESOURCES (JSON: {"clusters": [...],
"listeners": [...], "endpoints": [...]}), and each template returns its list: sovereign's cheapest template path
(a Python template, no Jinja), so what is measured is sovereign's serving cost.
"""

from __future__ import annotations

import json
import os
from typing import Any

with open(os.environ["PEER_RESOURCES"]) as f:
    _RESOURCES: dict[str, list[dict[str, Any]]] = json.load(f)


def resources(kind: str) -> list[dict[str, Any]]:
    return _RESOURCES[kind]
