"""Who may use the control plane's HTTP API, and from where: a bearer token, the Host a request names, the Origin a
browser adds, and the media type of a write. Each check is an aiohttp middleware; a refusal is a 4xx with a reason
in JSON, logged, and never carries CORS headers (so a cross-site page cannot read even the refusal).

Why each check exists: a CORS "simple request" (form or text/plain POST) reaches a loopback server from any page
the operator opens, and DNS rebinding lets a page read responses under its own host name. The token is what
really keeps a browser out (a page cannot add an Authorization header cross-origin without a preflight, which
this server never grants); Host, Origin and Content-Type checks are the second wall.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

__all__ = [
    "DEFAULT_STATE_DIR",
    "PUBLIC_PATHS",
    "TOKEN_FILE_NAME",
    "WRITE_MEDIA_TYPES",
    "ApiPolicy",
    "MalformedRequestFilter",
    "client_token",
    "load_or_create_token",
    "middlewares",
    "read_token",
]

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path(".tcpmesh")
TOKEN_FILE_NAME = "token"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/ui"})
"""No token needed (GET only). /ui is the page shell alone: its data comes from the API with the token."""
WRITE_MEDIA_TYPES = frozenset({"application/yaml", "application/x-yaml", "application/json"})
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- tokens -------------------------------------------------------------------------------------


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace ignored); ValueError when the file is unusable."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the API token file {path}: {exc}") from exc
    if not token:
        raise ValueError(f"the API token file {path} is empty")
    return token


def load_or_create_token(path: Path) -> str:
    """The token in ``path``; on first start a new random one, written with mode 0600 (never printed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("the API token file %s is readable by others (mode %o); chmod 600 it", path, mode)
        return read_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    log.info("created the API token in %s (mode 0600)", path)
    return token


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_token(server: str, token_file: Path | None, env: dict[str, str] | None = None) -> str | None:
    """The token the CLI sends: ``--token-file``, else ``$TCPMESH_TOKEN``, else the local ``tcpmesh up`` state dir's
    token, which is only sent to a loopback server (a remote one must be given its token explicitly)."""
    environ = os.environ if env is None else env
    if token_file is not None:
        return read_token(token_file)
    if environ.get("TCPMESH_TOKEN"):
        return environ["TCPMESH_TOKEN"].strip()
    local = Path(environ.get("TCPMESH_STATE_DIR") or DEFAULT_STATE_DIR) / TOKEN_FILE_NAME
    host = urlsplit(server if "://" in server else f"http://{server}").hostname or ""
    if _is_loopback_host(host) and local.is_file():
        return read_token(local)
    return None


# --- the policy -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiPolicy:
    """What the middlewares enforce. ``bind_host`` is the address the API listens on."""

    token: str
    bind_host: str
    allowed_hosts: frozenset[str] = frozenset()
    tls: bool = False

    def host_allowed(self, host: str) -> bool:
        """A Host names this server when it is the bound address, a configured name, ``localhost`` on a loopback
        or wildcard bind, or (on a wildcard bind) any IP literal: an IP literal cannot come from DNS rebinding,
        which always arrives under the attacker's host name."""
        if host in self.allowed_hosts or host == self.bind_host:
            return True
        try:
            literal = ipaddress.ip_address(self.bind_host)
        except ValueError:
            return False
        wildcard = literal.is_unspecified
        if host == "localhost" and (wildcard or literal.is_loopback):
            return True
        if wildcard:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                return False
            return True
        return False


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
