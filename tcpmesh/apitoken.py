"""The HTTP API's credentials and policy: the bearer token (created on first start, never printed), the token a
client sends, and `ApiPolicy`, what apiauth.py's middlewares enforce. No aiohttp here: a serving process reads
its token before it starts the translation worker, and aiohttp's ~0.1 s of imports can wait until then.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["DEFAULT_STATE_DIR", "TOKEN_FILE_NAME", "ApiPolicy", "client_token", "load_or_create_token", "read_token"]

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path(".tcpmesh")
TOKEN_FILE_NAME = "token"


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
