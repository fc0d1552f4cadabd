"""Drains: a VirtualService annotation asking the proxies to close some old connections of one subset.

``drain.tcpmesh.io/<subset>: '{"since": "2026-12-02T01:00:00Z", "fraction": 0.35}'`` means: of the connections to
that subset's endpoints (through this VirtualService's destinations) that opened before ``since``, close the
``fraction`` whose connection hash is lowest. ``tcpmesh drain`` raises the fraction from 0 to 1 over a period,
so the old connections close spread over it; connections opened after ``since`` are never closed by it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tcpmesh.model.resources import VirtualService

__all__ = ["DRAIN_ANNOTATION_PREFIX", "Drain", "drain_annotation", "drains_of", "format_since", "parse_drain"]

DRAIN_ANNOTATION_PREFIX = "drain.tcpmesh.io/"
_SUBSET = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


@dataclass(frozen=True, slots=True)
class Drain:
    subset: str
    since: str
    """RFC 3339 in UTC with a ``Z``: the form CEL's ``timestamp()`` parses in Envoy."""
    fraction: float


def format_since(moment: datetime) -> str:
    """``moment`` as ``since`` (UTC, milliseconds)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def drain_annotation(subset: str, since: str, fraction: float) -> tuple[str, str]:
    """The annotation (key, value) for a drain."""
    value = json.dumps({"since": since, "fraction": round(fraction, 6)}, separators=(", ", ": "))
    return DRAIN_ANNOTATION_PREFIX + subset, value


def parse_drain(key: str, value: str) -> Drain | str:
    """The drain an annotation describes, or why it is not one (for the validation message)."""
    subset = key[len(DRAIN_ANNOTATION_PREFIX) :]
    if not _SUBSET.fullmatch(subset):
        return f"drain annotation {key!r}: the subset {subset!r} is not a valid subset name"
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
    return Drain(subset=subset, since=since, fraction=float(fraction))


def drains_of(vs: VirtualService) -> tuple[Drain, ...]:
    """The valid drains a VirtualService carries (validation reports the others)."""
    out = []
    for key, value in vs.meta.annotations:
        if key.startswith(DRAIN_ANNOTATION_PREFIX):
            drain = parse_drain(key, value)
            if isinstance(drain, Drain):
                out.append(drain)
    return tuple(out)
