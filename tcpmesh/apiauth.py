"""Who may use the control plane's HTTP API, and from where: a bearer token, the Host a request names, the Origin a
browser adds, and the media type of a write (the token and `ApiPolicy` are apitoken.py's). Each check is an
aiohttp middleware; a refusal is a 4xx with a reason in JSON, logged, and never carries CORS headers (so a
cross-site page cannot read even the refusal).

Why each check exists: a CORS "simple request" (form or text/plain POST) reaches a loopback server from any page
the operator opens, and DNS rebinding lets a page read responses under its own host name. The token is what
really keeps a browser out (a page cannot add an Authorization header cross-origin without a preflight, which
this server never grants); Host, Origin and Content-Type checks are the second wall.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from tcpmesh.apitoken import ApiPolicy

__all__ = ["PUBLIC_PATHS", "WRITE_MEDIA_TYPES", "MalformedRequestFilter", "middlewares"]

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/ui"})
"""No token needed (GET only). /ui is the page shell alone: its data comes from the API with the token."""
WRITE_MEDIA_TYPES = frozenset({"application/yaml", "application/x-yaml", "application/json"})
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _split_host(value: str) -> str:
    """The host part of a Host header (``[::1]:80`` → ``::1``, ``Example.COM.:80`` → ``example.com``)."""
    value = value.strip()
    if value.startswith("["):
        return value[1 : value.find("]")].lower() if "]" in value else ""
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return host.lower().rstrip(".")


def _refuse(request: web.Request, status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    log.warning("refused %s %s from %s: %s", request.method, request.rel_url.path, request.remote or "?", reason)
    return web.json_response({"error": reason}, status=status, headers=headers)


def _host_check(policy: ApiPolicy) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = request.headers.getall("Host", [])
        if len(raw) != 1 or not raw[0].strip():
            return _refuse(request, 400, "exactly one Host header is required")
        host = _split_host(raw[0])
        if not policy.host_allowed(host):
            return _refuse(
                request,
                421,
                f"Host {raw[0]!r} does not name this server (DNS rebinding?); "
                "add the name with --http-allowed-hosts if it is yours",
            )
        return await handler(request)

    return check


def _endpoint(scheme: str, netloc: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in, for comparing an Origin with a Host."""
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").rstrip("."), port or (443 if scheme == "https" else 80)


def _origin_check(policy: ApiPolicy) -> Middleware:
    scheme = "https" if policy.tls else "http"

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        site = request.headers.get("Sec-Fetch-Site", "").lower()
        if site in ("cross-site", "same-site"):
            return _refuse(request, 403, f"cross-origin requests are refused (Sec-Fetch-Site: {site})")
        origin = request.headers.get("Origin")
        if origin is not None:
            # Same origin only: this server's scheme and exactly the host and port the request was sent to.
            parts = urlsplit(origin.strip().lower())
            same = parts.scheme in ("http", "https") and _endpoint(parts.scheme, parts.netloc) == _endpoint(
                scheme, request.headers.get("Host", "").strip().lower()
            )
            if not same:
                return _refuse(request, 403, f"cross-origin requests are refused (Origin {origin!r})")
        return await handler(request)

    return check


def _token_check(policy: ApiPolicy) -> Middleware:
    expected = policy.token.encode()
    challenge = {"WWW-Authenticate": 'Bearer realm="tcpmesh"'}

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.rel_url.path in PUBLIC_PATHS and request.method in ("GET", "HEAD"):
            return await handler(request)
        auth = request.headers.get("Authorization", "")
        scheme, _, given = auth.partition(" ")
        if not auth:
            return _refuse(request, 401, "missing bearer token (Authorization: Bearer <token>)", challenge)
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            return _refuse(request, 401, "invalid bearer token", challenge)
        return await handler(request)

    return check


@web.middleware
async def _media_type_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in _WRITE_METHODS:
        given = request.headers.get("Content-Type", "")
        media = given.split(";", 1)[0].strip().lower()
        if media not in WRITE_MEDIA_TYPES:
            shown = repr(given) if given else "none"
            return _refuse(
                request,
                415,
                f"unsupported Content-Type {shown}; send one of {', '.join(sorted(WRITE_MEDIA_TYPES))}",
            )
    return await handler(request)


def middlewares(policy: ApiPolicy) -> list[Middleware]:
    """In the order they run: where the request says it goes, where it comes from, who sends it, what it sends."""
    return [_host_check(policy), _origin_check(policy), _token_check(policy), _media_type_check]


class MalformedRequestFilter(logging.Filter):
    """aiohttp answers a request it cannot parse (no Host, bad header) with a 400 but logs a traceback at ERROR:
    a client must not be able to fill the log with tracebacks, so such records become one warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "refused a malformed HTTP request: %s", (str(exc).strip().replace("\n", " "),)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True
