"""Drains: a VirtualService annotation asking the proxies to close some old connections of one subset.

``drain.tcpmesh.io/<subset>: '{"since": "2026-12-02T01:00:00Z", "fraction": 0.35}'`` means: of the connections to
that subset's endpoints (through this VirtualService's destinations) that opened before ``since``, close the
``fraction`` whose connection hash is lowest. ``tcpmesh drain`` raises the fraction from 0 to 1 over a period,
so the old connections close spread over it; connections opened after ``since`` are never closed by it.

A TCPRoute or TLSRoute has no subsets: ``drain.tcpmesh.io/<backend>`` on it names a backendRef (a Service name,
or an Istio Hostname). The conversion carries it to the generated VirtualServices keyed by the backend's host and
port (``internal.tcpmesh.io/drain:<port>:<host>``), since a drained backend usually weighs 0 by then and so has
no destination left in the generated routes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tcpmesh.model.pickled import pickled_by_slots
from tcpmesh.model.resources import VirtualService

__all__ = [
    "DRAIN_ANNOTATION_PREFIX",
    "HOST_DRAIN_PREFIX",
    "BackendDrain",
    "Drain",
    "drain_annotation",
    "drains_of",
    "format_since",
    "host_drain_annotation",
    "parse_backend_drain",
    "parse_drain",
]

DRAIN_ANNOTATION_PREFIX = "drain.tcpmesh.io/"
HOST_DRAIN_PREFIX = "internal.tcpmesh.io/drain:"
"""A generated VirtualService's drain of one backend host and port (never written by users)."""
_SUBSET = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_BACKEND = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
"""A Service name or a hostname, as the name part of an annotation key (at most 63 characters)."""
_RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class Drain:
    subset: str
    since: str
    """RFC 3339 in UTC with a ``Z``: the form CEL's ``timestamp()`` parses in Envoy."""
    fraction: float
    host: str = ""
    """Set for a Gateway API backend's drain: the clusters of this host (subset ``""``) are drained."""
    port: int | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class BackendDrain:
    """``drain.tcpmesh.io/<backend>`` on a TCPRoute or TLSRoute: the backendRefs named ``backend``."""

    backend: str
    since: str
    fraction: float


def format_since(moment: datetime) -> str:
    """``moment`` as ``since`` (UTC, milliseconds)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def drain_annotation(subset: str, since: str, fraction: float) -> tuple[str, str]:
    """The annotation (key, value) for a drain."""
    value = json.dumps({"since": since, "fraction": round(fraction, 6)}, separators=(", ", ": "))
    return DRAIN_ANNOTATION_PREFIX + subset, value


def _parse_value(key: str, value: str) -> tuple[str, float] | str:
    """(since, fraction) of a drain annotation's JSON value, or why it is not one."""
    try:
        data: Any = json.loads(value)
    except ValueError:
        return f'drain annotation {key!r}: expected JSON like {{"since": "2026-01-02T03:04:05Z", "fraction": 0.5}}'
    if not isinstance(data, dict) or set(data) != {"since", "fraction"}:
        return f"drain annotation {key!r}: expected exactly the keys 'since' and 'fraction'"
    since, fraction = data["since"], data["fraction"]
    if not isinstance(since, str) or not _RFC3339_UTC.fullmatch(since):
        return f"drain annotation {key!r}: since {since!r} is not an RFC 3339 UTC time such as 2026-01-02T03:04:05Z"
    try:
        datetime.fromisoformat(since)
    except ValueError:
        return f"drain annotation {key!r}: since {since!r} is not a valid time"
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        return f"drain annotation {key!r}: fraction {fraction!r} must be a number from 0 to 1"
    return since, float(fraction)


def parse_drain(key: str, value: str) -> Drain | str:
    """The drain an annotation describes, or why it is not one (for the validation message)."""
    subset = key[len(DRAIN_ANNOTATION_PREFIX) :]
    if not _SUBSET.fullmatch(subset):
        return f"drain annotation {key!r}: the subset {subset!r} is not a valid subset name"
    parsed = _parse_value(key, value)
    if isinstance(parsed, str):
        return parsed
    return Drain(subset=subset, since=parsed[0], fraction=parsed[1])


def parse_backend_drain(key: str, value: str) -> BackendDrain | str:
    """The drain a TCPRoute's or TLSRoute's annotation describes, or why it is not one."""
    backend = key[len(DRAIN_ANNOTATION_PREFIX) :]
    if len(backend) > 63 or not _BACKEND.fullmatch(backend):
        return (
            f"drain annotation {key!r}: {backend!r} is not a backendRef name (a Service name or a hostname of at "
            "most 63 characters)"
        )
    parsed = _parse_value(key, value)
    if isinstance(parsed, str):
        return parsed
    return BackendDrain(backend=backend, since=parsed[0], fraction=parsed[1])


def host_drain_annotation(host: str, port: int, drain: BackendDrain) -> tuple[str, str]:
    """The generated VirtualService's annotation for a backend's drain."""
    _, value = drain_annotation("", drain.since, drain.fraction)
    return f"{HOST_DRAIN_PREFIX}{port}:{host}", value


def _host_drain(key: str, value: str) -> Drain | None:
    port, _, host = key[len(HOST_DRAIN_PREFIX) :].partition(":")
    parsed = _parse_value(key, value)
    if isinstance(parsed, str) or not port.isdigit() or not host:
        return None
    return Drain(subset="", since=parsed[0], fraction=parsed[1], host=host, port=int(port))


def drains_of(vs: VirtualService) -> tuple[Drain, ...]:
    """The valid drains a VirtualService carries (validation reports the others), generated ones included."""
    out = []
    for key, value in vs.meta.annotations:
        drain: Drain | str | None = None
        if key.startswith(DRAIN_ANNOTATION_PREFIX):
            drain = parse_drain(key, value)
        elif key.startswith(HOST_DRAIN_PREFIX):
            drain = _host_drain(key, value)
        if isinstance(drain, Drain):
            out.append(drain)
    return tuple(out)
