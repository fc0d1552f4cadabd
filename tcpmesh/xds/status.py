"""Values the xds layer reports to the shell: ACK/NACK events and per-proxy sync status."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tcpmesh.xds.types import Node


class SyncState(enum.Enum):
    """Per type, like CSDS's server view (envoy/service/status/v3/csds.proto)."""

    NOT_SENT = "NOT_SENT"
    """Nothing sent yet (not requested, or nothing to send)."""
    SYNCED = "SYNCED"
    """The last version sent was ACKed."""
    STALE = "STALE"
    """A newer version was sent and not answered yet."""
    ERROR = "ERROR"
    """The last version sent was NACKed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Nack:
    message: str
    """Envoy's error_detail.message: for humans, not stable across Envoy versions."""
    version: str
    """The version that was rejected."""
    at: float
    """Wall-clock time (time.time()) the NACK arrived."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AckEvent:
    """An ACK (error is None) or NACK from a proxy, passed to the server's `on_ack` callback."""

    type_url: str
    node_id: str
    version: str
    """The version the proxy answered about (the one it accepted or rejected)."""
    error: str | None
    nonce: str
    sent_at: float
    """time.monotonic() when the answered response was queued."""
    changed_at: float | None
    """time.monotonic() of the config change that caused that response; None for a response to a request."""
    received_at: float
    """time.monotonic() when the answer arrived."""

    @property
    def convergence_s(self) -> float | None:
        """Seconds from config change to this answer, the figure behind pilot_proxy_convergence_time."""
        return None if self.changed_at is None else self.received_at - self.changed_at


AckCallback = Callable[[AckEvent], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class TypeStatus:
    type_url: str
    state: SyncState
    sent_version: str | None
    acked_version: str | None
    nonce: str | None
    """The latest nonce sent."""
    last_nack: Nack | None
    """The most recent NACK, kept after later ACKs for debugging; `state` says whether it still applies."""
    wildcard: bool
    subscribed: frozenset[str]
    sent_count: int
    """Number of resources in the last response."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProxyStatus:
    """One connected ADS stream."""

    stream_id: int
    node: Node
    connected_since: float
    """Wall-clock time (time.time()) the stream opened."""
    protocol: str
    """"sotw" or "delta"."""
    types: Mapping[str, TypeStatus]

    @property
    def node_id(self) -> str:
        return self.node.id
