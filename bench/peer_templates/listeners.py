"""sovereign template: the listeners."""

from __future__ import annotations

from typing import Any

from peer_templates import resources


def call(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return resources("listeners")
