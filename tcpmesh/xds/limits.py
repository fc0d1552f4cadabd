"""Per-stream limits on what one ADS client may ask for, so an abusive stream is ended with a clear gRPC status
instead of slowing every other client.

A real Envoy asks for a handful of type URLs (CDS, EDS, LDS, maybe RDS/SDS/ECDS) and sends about one request per
response it receives. Each distinct type URL costs state and work on every later request of the stream, so a
client inventing thousands of them makes each request slower than the last; a client sending requests as fast as
it can keeps the event loop busy. Both end that stream only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tcpmesh.xds.types import PUSH_ORDER

__all__ = ["DEFAULT_LIMITS", "StreamLimits", "StreamRefused", "TypeUrlGuard"]


class StreamRefused(Exception):
    """The stream broke a limit: end it with ``code`` (a grpc.StatusCode name) and ``details``."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_unknown_type_urls: int = 8
    """Distinct type URLs the server does not serve; Envoy asks for few (and gets an empty answer)."""
    max_type_url_length: int = 256
    requests_per_second: float = 200.0
    request_burst: int = 1_000
    """A token bucket: ``request_burst`` requests at once, then ``requests_per_second`` sustained."""


DEFAULT_LIMITS = StreamLimits()
_MAX_EARNED = 50_000


@dataclass
class TypeUrlGuard:
    """Checks each request of one stream against its limits; raises StreamRefused on the first breach."""

    limits: StreamLimits = DEFAULT_LIMITS
    clock: Callable[[], float] = time.monotonic
    _unknown: set[str] = field(default_factory=set)
    _tokens: float = -1.0
    _last: float = 0.0
    _earned: int = 0
    """Requests earned by listeners and clusters sent (see `credit`), spent once the bucket is empty."""
    _credited: int = 0

    def credit(self, resources: int) -> None:
        """The server sent this many listeners or clusters: the client may answer each with a request of its own
        (Envoy subscribes to a listener's ECDS config, or a cluster's endpoints, as each one arrives: 10 000
        listeners are up to 10 000 requests). At most _MAX_EARNED over the stream's life, so a client that makes
        the server re-send its listeners cannot earn an unbounded rate."""
        grant = max(0, min(resources, _MAX_EARNED - self._credited))
        self._credited += grant
        self._earned += grant

    def check(self, type_url: str) -> None:
        limits = self.limits
        now = self.clock()
        if self._tokens < 0:
            self._tokens, self._last = float(limits.request_burst), now
        self._tokens = min(float(limits.request_burst), self._tokens + (now - self._last) * limits.requests_per_second)
        self._last = now
        if self._tokens < 1 and self._earned > 0:
            self._earned -= 1
            self._tokens += 1
        if self._tokens < 1:
            raise StreamRefused(
                "RESOURCE_EXHAUSTED",
                f"more than {limits.request_burst} requests at once or {limits.requests_per_second:g}/s on one stream",
            )
        self._tokens -= 1
        if len(type_url) > limits.max_type_url_length:
            raise StreamRefused("INVALID_ARGUMENT", f"type_url longer than {limits.max_type_url_length} characters")
        if type_url in PUSH_ORDER or type_url in self._unknown or not type_url:
            return
        if len(self._unknown) >= limits.max_unknown_type_urls:
            raise StreamRefused(
                "RESOURCE_EXHAUSTED",
                f"more than {limits.max_unknown_type_urls} distinct type URLs this server does not serve on one "
                f"stream (last {type_url[:80]!r})",
            )
        self._unknown.add(type_url)
