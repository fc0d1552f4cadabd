"""The control plane's HTTP API as a client calls it: one JSON request. Used by the commands, the runtime (status
of a control plane it started) and the benchmarks, so none of them imports another's CLI code."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["ServerError", "request_json"]


class ServerError(Exception):
    pass


def request_json(
    server: str,
    path: str,
    *,
    body: bytes | None = None,
    timeout: float = 30.0,
    token: str | None = None,
    cafile: Path | None = None,
) -> tuple[int, Any]:
    """One API call; ``body`` is sent as YAML (JSON is YAML too). ``token`` is the API's bearer token."""
    url = f"http://{server}{path}" if "://" not in server else f"{server}{path}"
    headers = {"Content-Type": "application/yaml"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET", headers=headers)
    context = ssl.create_default_context(cafile=str(cafile)) if cafile is not None else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return exc.code, json.loads(payload or b"null")
        except json.JSONDecodeError:
            return exc.code, {"error": payload.decode(errors="replace")}
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerError(f"cannot reach the control plane at {server}: {reason}") from exc
