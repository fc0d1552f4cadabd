"""A small client for Envoy's admin API (stdlib urllib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["AdminError", "EnvoyAdmin", "parse_text_stats"]


class AdminError(RuntimeError):
    """The admin API answered with an error status."""

    def __init__(self, path: str, status: int, body: str) -> None:
        super().__init__(f"admin {path} -> HTTP {status}: {body.strip()[:500]}")
        self.path = path
        self.status = status
        self.body = body


class EnvoyAdmin:
    """Admin API at ``http://host:port``; every call is bounded by ``timeout`` seconds."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.base_url = f"http://{host}:{port}"

    def request(self, path: str, *, method: str = "GET") -> tuple[int, str]:
        """Return (status, body) for any status; raise OSError/URLError if nothing answered."""
        url = self.base_url + (path if path.startswith("/") else "/" + path)
        req = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return int(resp.status), resp.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            # Envoy answers 503 on /ready while initialising: still an answer.
            with exc:
                return exc.code, exc.read().decode("utf-8", errors="replace")

    def get(self, path: str) -> str:
        """GET ``path``; raise AdminError unless 200."""
        status, body = self.request(path)
        if status != 200:
            raise AdminError(path, status, body)
        return body

    def post(self, path: str) -> str:
        """POST ``path`` (mutating endpoints such as ``/healthcheck/fail``); raise AdminError unless 200."""
        status, body = self.request(path, method="POST")
        if status != 200:
            raise AdminError(path, status, body)
        return body

    def server_state(self) -> str:
        """``LIVE``, ``PRE_INITIALIZING``, ``INITIALIZING`` or ``DRAINING`` (the body of ``/ready``)."""
        return self.request("/ready")[1].strip()

    def config_dump(
        self, *, resource: str | None = None, mask: str | None = None, include_eds: bool = False
    ) -> dict[str, Any]:
        """``/config_dump`` as JSON.

        ``resource`` selects a repeated field (``dynamic_active_clusters``, ``static_listeners``), ``mask`` a
        singular one (``bootstrap``); ``include_eds`` adds endpoint configs.
        """
        query: dict[str, str] = {}
        if resource:
            query["resource"] = resource
        if mask:
            query["mask"] = mask
        if include_eds:
            query["include_eds"] = ""
        path = "/config_dump" + ("?" + urllib.parse.urlencode(query) if query else "")
        result: dict[str, Any] = json.loads(self.get(path))
        return result

    def stats(self, *, filter: str | None = None) -> dict[str, int]:
        """Counters and gauges by name (histograms and text stats such as ``version_text`` left out);
        ``filter`` is Envoy's regex filter."""
        query = {"format": "json"}
        if filter:
            query["filter"] = filter
        doc = json.loads(self.get("/stats?" + urllib.parse.urlencode(query)))
        return {
            s["name"]: int(s["value"])
            for s in doc.get("stats", [])
            if isinstance(s.get("value"), int) and not isinstance(s.get("value"), bool)
        }

    def listeners(self) -> dict[str, tuple[str, int]]:
        """Active listeners by name with their bound address (the real port when the config said 0)."""
        doc = json.loads(self.get("/listeners?format=json"))
        result: dict[str, tuple[str, int]] = {}
        for status in doc.get("listener_statuses", []):
            sock = status.get("local_address", {}).get("socket_address", {})
            result[status["name"]] = (sock.get("address", ""), int(sock.get("port_value", 0)))
        return result

    def clusters(self) -> dict[str, Any]:
        """``/clusters?format=json``: clusters with their hosts and health."""
        result: dict[str, Any] = json.loads(self.get("/clusters?format=json"))
        return result


def parse_text_stats(text: str) -> dict[str, int]:
    """Parse ``/stats`` text (``name: value`` lines); histogram lines are skipped."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, value = line.rpartition(": ")
        if sep and value.strip().lstrip("-").isdigit():
            result[name] = int(value)
    return result
