"""VirtualService ``http:`` routes as typed, frozen values (istio.io/api networking/v1 HTTPRoute and parts).

Field names follow the Istio API in snake_case. Durations are whole milliseconds (the parser enforces istiod's
1 ms precision); percentages are the ``Percent.value`` floats, ``None`` when not written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from tcpmesh.model.pickled import pickled_by_slots
from tcpmesh.model.resources import Destination, Labels

__all__ = [
    "Abort",
    "CorsPolicy",
    "Delay",
    "Delegate",
    "DirectResponse",
    "Fault",
    "HTTPMatch",
    "HTTPRoute",
    "HTTPRouteDestination",
    "HeaderOperations",
    "Headers",
    "Mirror",
    "NamedMatches",
    "Redirect",
    "RegexRewrite",
    "Retry",
    "Rewrite",
    "StringMatch",
]


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class StringMatch:
    """One of ``exact``, ``prefix`` or ``regex``; ``kind`` is empty when none was written (``{}``)."""

    kind: str = ""
    value: str = ""


NamedMatches: TypeAlias = tuple[tuple[str, StringMatch | None], ...]
"""Header or query parameter name → its match, in the order written (None: written as null)."""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPMatch:
    name: str = ""
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: NamedMatches = ()
    query_params: NamedMatches = ()
    without_headers: NamedMatches = ()
    ignore_uri_case: bool = False
    port: int = 0
    source_labels: Labels = ()
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""
    stat_prefix: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderOperations:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Headers:
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRouteDestination:
    destination: Destination
    weight: int = 0
    headers: Headers | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Delay:
    fixed_delay_ms: int | None = None
    exponential_delay_ms: int | None = None
    percentage: float | None = None
    percent: int | None = None
    """The deprecated integer ``percent``."""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Abort:
    http_status: int | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: float | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    delay: Delay | None = None
    abort: Abort | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    attempts: int = 0
    per_try_timeout_ms: int | None = None
    retry_on: str = ""
    retry_remote_localities: bool | None = None
    backoff_ms: int | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class RegexRewrite:
    match: str = ""
    rewrite: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Rewrite:
    uri: str = ""
    authority: str = ""
    uri_regex_rewrite: RegexRewrite | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    uri: str = ""
    authority: str = ""
    port: int | None = None
    derive_port: str = ""
    scheme: str = ""
    redirect_code: int = 0


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class DirectResponse:
    status: int = 0
    body: str | None = None
    """The body text (``string``) or base64 text (``bytes``), as written."""
    body_size: int = 0
    body_is_bytes: bool = False
    """The body was written as base64 ``bytes``."""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class CorsPolicy:
    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_ms: int | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Mirror:
    destination: Destination | None = None
    percentage: float | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Delegate:
    name: str = ""
    namespace: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRoute:
    name: str = ""
    match: tuple[HTTPMatch, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    has_route: bool = False
    """``route:`` was written (istiod's root-route check tells ``route: []`` from no route)."""
    redirect: Redirect | None = None
    direct_response: DirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: Rewrite | None = None
    timeout_ms: int | None = None
    retries: Retry | None = None
    fault: Fault | None = None
    mirror: Destination | None = None
    mirrors: tuple[Mirror | None, ...] = ()
    mirror_percent: int | None = None
    mirror_percentage: float | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None
