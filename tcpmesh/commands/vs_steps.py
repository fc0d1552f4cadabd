"""What `tcpmesh rollout` and `tcpmesh drain` share: a VirtualService (or a Gateway API TCPRoute / TLSRoute) read
from the store, written back a step at a time, and the wait until every connected proxy has ACKed."""

from __future__ import annotations

import argparse
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

__all__ = [
    "ROUTE_KINDS",
    "Api",
    "all_acked",
    "duration_arg",
    "fetch_object",
    "parse_target",
    "refusal",
]

Api = Callable[[str, bytes | None], tuple[int, Any]]
"""(path, body or None for GET) → (HTTP status, JSON payload): the control plane's API."""


def duration_arg(text: str) -> float:
    """A duration argument: 30s, 5m, 500ms, 1h or plain seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    if text.replace(".", "", 1).isdigit():
        return float(text)
    raise argparse.ArgumentTypeError(f"expected a duration such as 30s, 5m or 500ms, got {text!r}")


ROUTE_KINDS = ("TCPRoute", "TLSRoute")
_TARGET_KINDS = {
    "vs": "VirtualService",
    "virtualservice": "VirtualService",
    "virtualservices": "VirtualService",
    "tcproute": "TCPRoute",
    "tcproutes": "TCPRoute",
    "tlsroute": "TLSRoute",
    "tlsroutes": "TLSRoute",
}


def parse_target(target: str) -> tuple[str, str]:
    """``vs/NAME``, ``tcproute/NAME``, ``tlsroute/NAME`` or ``NAME`` (a VirtualService) → (kind, name)."""
    kind, _, name = target.rpartition("/")
    resolved = _TARGET_KINDS.get(kind.lower()) if kind else "VirtualService"
    if resolved is None or not name:
        raise ValueError(f"expected vs/NAME, tcproute/NAME or tlsroute/NAME, got {target!r}")
    return resolved, name


def fetch_object(api: Api, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The stored resource with its resourceVersion, or None when there is none."""
    query = urllib.parse.urlencode({"kind": kind, "name": name, "namespace": namespace, "content": "1"})
    code, payload = api(f"/api/resources?{query}", None)
    items = payload.get("items", []) if code == 200 else []
    if not items or "object" not in items[0]:
        return None
    return dict(items[0]["object"])


def refusal(code: int, payload: Any) -> str:
    """Why the store refused an apply, from its answer."""
    problems = "; ".join(p.get("text", "") for p in payload.get("problems", [])) if isinstance(payload, dict) else ""
    return f"the store refused the step ({code}): {problems or (payload or {}).get('error')}"


def all_acked(api: Api, generation: int, timeout: float) -> bool:
    """Wait until every connected proxy has ACKed config generation ``generation`` (False on timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        _, status = api("/debug/syncz", None)
        if status["generation"] >= generation and all(
            t["state"] in ("SYNCED", "NOT_SENT") for p in status["proxies"] for t in p["types"].values()
        ):
            return True
        time.sleep(0.1)
    return False
