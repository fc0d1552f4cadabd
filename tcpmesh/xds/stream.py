"""What SotW and delta streams share: node, nonces, per-type ACK/NACK bookkeeping and status."""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tcpmesh.xds.cache import Entry, Snapshot, TypeSnapshot
from tcpmesh.xds.ordering import Held, Staged, stage, unstaged
from tcpmesh.xds.status import AckCallback, AckEvent, Nack, SyncState, TypeStatus
from tcpmesh.xds.types import Node, push_rank

log = logging.getLogger(__name__)

_NAME_SETS_KEPT = 64


class NameSets:
    """Subscription name sets, interned: the streams of a group name the same resources, so they share one
    frozenset (and one str per name) instead of each holding copies parsed from its own requests. The server
    gives one to all its streams; a stream made alone gets its own."""

    def __init__(self, kept: int = _NAME_SETS_KEPT) -> None:
        self._kept = kept
        self._sets: dict[frozenset[str], frozenset[str]] = {}

    def intern(self, names: Iterable[str], like: frozenset[str] = frozenset()) -> frozenset[str]:
        """The shared set equal to `names`. `like` is a set the caller holds (the previous subscription): its
        strings are reused and only the new ones interned, so a subscription that grows by one name costs a few
        C-level set operations, not a Python loop over every name (Envoy grows its ECDS subscription one listener
        at a time: 10 000 requests at 10 000 services)."""
        key = names if isinstance(names, frozenset) else frozenset(names)
        if key == like:
            return like
        new = key - like
        # The names it keeps, as the strings `like` holds: all of them when it only grew (the usual request).
        kept = like if len(key) - len(new) == len(like) else like - (like - key)
        return self._shared(kept | frozenset(sys.intern(n) for n in new) if new else kept)

    def derive(self, old: frozenset[str], added: Iterable[str], removed: Iterable[str]) -> frozenset[str]:
        """The shared set `old - removed | added` (delta subscriptions arrive as changes)."""
        gone = frozenset(removed) & old
        new = frozenset(added) - old
        if not gone and not new:
            return old
        key = old - gone if gone else old
        if new:
            key = key | frozenset(sys.intern(n) for n in new)
        return self._shared(key)

    def _shared(self, key: frozenset[str]) -> frozenset[str]:
        found = self._sets.get(key)
        if found is not None:
            return found
        if len(self._sets) >= self._kept:
            del self._sets[next(iter(self._sets))]
        self._sets[key] = key
        return key


_MAX_HISTORY = 32  # unanswered responses remembered per type; more in flight means a client that is not reading


@dataclass
class TypeTracking:
    """Per type on one stream: the client's subscription and the state of our last response."""

    wildcard: bool = False
    explicit: bool = False
    """The client subscribed explicitly at least once; ends the legacy "empty means all" rule."""
    names: frozenset[str] = frozenset()
    sent_version: str | None = None
    nonce: str | None = None
    sent_at: float = 0.0
    changed_at: float | None = None
    sent_count: int = 0
    acked_version: str | None = None
    nacked_version: str | None = None
    last_nack: Nack | None = None
    awaiting: bool = False
    """The last response is not answered (ACK or NACK) yet: flow control holds new pushes of this type."""
    resend: bool = False
    """Send on the next chance even if unchanged (endpoints after a cluster push)."""
    sent_entries: Mapping[str, Entry | None] = field(default_factory=dict)
    """What the proxy holds once it applies the last response (None: a version whose content we lack).

    Never mutated in place: it is replaced, and a stream in sync with its group holds the type snapshot's (or the
    shared subset's) own mapping, so `acked_entries` and `history` below are references, not copies."""
    acked_entries: Mapping[str, Entry | None] = field(default_factory=dict)
    """What the proxy held at its last ACK (read-only, shared like `sent_entries`)."""
    history: dict[str, Mapping[str, Entry | None]] = field(default_factory=dict)
    """nonce -> sent_entries of responses not answered yet, oldest first: an answer to any of them (even a
    superseded one) tells what the proxy holds now."""

    def held(self) -> Held:
        in_flight = tuple(self.history.values())
        sent = self.sent_entries if self.awaiting else {}
        return Held(acked=self.acked_entries, sent=sent, awaiting=self.awaiting, in_flight=in_flight)

    def status(self, type_url: str) -> TypeStatus:
        if self.sent_version is None:
            state = SyncState.NOT_SENT
        elif self.acked_version == self.sent_version:
            state = SyncState.SYNCED
        elif self.nacked_version == self.sent_version:
            state = SyncState.ERROR
        else:
            state = SyncState.STALE
        return TypeStatus(
            type_url=type_url,
            state=state,
            sent_version=self.sent_version,
            acked_version=self.acked_version,
            nonce=self.nonce,
            last_nack=self.last_nack,
            wildcard=self.wildcard,
            subscribed=self.names,
            sent_count=self.sent_count,
        )


T = TypeVar("T", bound=TypeTracking)


class StreamBase(Generic[T]):
    """Node, nonce and ACK/NACK handling common to both ADS variants."""

    def __init__(
        self,
        *,
        on_ack: AckCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        nonce_prefix: str | None = None,
        make_before_break: bool = False,
        flow_timeout: float | None = None,
        name_sets: NameSets | None = None,
    ) -> None:
        """`make_before_break` turns on make-before-break ordering by the entries' references (see ordering.py);
        `flow_timeout` turns on flow
        control: how long a push waits for the previous push of its type to be answered before going anyway
        (istiod's failsafe); None pushes without waiting."""
        self.node: Node | None = None
        self.snapshot: Snapshot | None = None
        self._types: dict[str, T] = {}
        self._name_sets = name_sets if name_sets is not None else NameSets()
        self._on_ack = on_ack
        self._clock = clock
        self._wall = wall_clock
        # Nonces only mean something within one stream; a random prefix keeps a nonce from an earlier stream
        # from matching one of ours by accident.
        self._nonce_prefix = nonce_prefix if nonce_prefix is not None else secrets.token_hex(4)
        self._nonce_counter = 0
        self._make_before_break = make_before_break
        self._staged: Staged = unstaged()
        self._flow_timeout = flow_timeout
        self._changed_at: float | None = None
        self.deferred = 0
        self._just_sent: set[int] = set()
        """Pushes held back by flow control (for tests and metrics)."""

    @property
    def node_id(self) -> str:
        return self.node.id if self.node is not None else ""

    def type_status(self) -> dict[str, TypeStatus]:
        return {t: self._types[t].status(t) for t in sorted(self._types, key=push_rank)}

    @property
    def staged(self) -> Staged:
        return self._staged

    def _held(self) -> dict[str, Held]:
        return {t: st.held() for t, st in self._types.items()}

    def _restage(self) -> None:
        self._just_sent.clear()
        if self._make_before_break and self.snapshot is not None:
            self._staged = stage(self.snapshot, self._held())

    def _view(self, type_url: str) -> TypeSnapshot | None:
        """What this type may offer now: the target, a make-before-break union, or None (wait)."""
        assert self.snapshot is not None
        return self._staged.get(self.snapshot, type_url)

    def _flow_blocked(self, st: T) -> bool:
        """The previous push of this type is unanswered and the failsafe timeout has not passed."""
        if not st.awaiting or self._flow_timeout is None:
            return False
        if id(st) in self._just_sent:
            return True  # pushed in this very evaluation: nothing more to decide
        if self._clock() - st.sent_at >= self._flow_timeout:
            log.warning("%s: no answer for nonce %s after %.1fs; pushing anyway", self.node_id, st.nonce,
                        self._flow_timeout)  # fmt: skip
            return False
        self.deferred += 1
        return True

    def timed_out(self) -> bool:
        """Some push waits behind an unanswered one whose failsafe timeout passed: call `poll()`."""
        if self._flow_timeout is None:
            return False
        now = self._clock()
        timeout = self._flow_timeout
        return any(st.awaiting and now - st.sent_at >= timeout for st in self._types.values())

    def _take_node(self, request: object) -> None:
        # Only the first request is guaranteed to carry the node (xds_protocol.rst, Basic Protocol Overview).
        if self.node is None and request.HasField("node"):  # type: ignore[attr-defined]
            self.node = Node.from_proto(request.node)  # type: ignore[attr-defined]

    def _note_answer(self, st: T, nonce: str, *, nack: bool) -> None:
        """Track what the proxy holds from any answer, even one to a superseded response (which the protocol
        otherwise ignores): with several pushes in flight, make-before-break must know which one it applied."""
        if nonce not in st.history:
            return
        while st.history:
            oldest = next(iter(st.history))
            entries = st.history.pop(oldest)
            if oldest == nonce:
                if not nack:
                    st.acked_entries = entries
                return

    def _next_nonce(self) -> str:
        self._nonce_counter += 1
        return f"{self._nonce_prefix}-{self._nonce_counter}"

    def _mark_sent(self, st: T, *, version: str, nonce: str, count: int, changed_at: float | None) -> None:
        st.sent_version, st.nonce, st.sent_count = version, nonce, count
        st.sent_at, st.changed_at = self._clock(), changed_at
        st.awaiting = True
        self._just_sent.add(id(st))
        st.history[nonce] = st.sent_entries  # read-only: shared, not copied
        if len(st.history) > _MAX_HISTORY:
            del st.history[next(iter(st.history))]

    def _record_ack(self, type_url: str, st: T, nonce: str) -> None:
        version = st.sent_version or ""
        st.awaiting = False
        st.acked_entries = st.sent_entries
        st.acked_version = version
        if st.nacked_version == version:
            st.nacked_version = None
        self._emit(type_url, st, version=version, error=None, nonce=nonce)

    def _record_nack(self, type_url: str, st: T, *, version: str, message: str, nonce: str) -> None:
        # The acked version stays; the rejected content is not re-sent until it changes (go-control-plane #46).
        st.nacked_version = version
        if nonce and nonce == st.nonce:
            st.awaiting = False
        st.last_nack = Nack(message=message, version=version, at=self._wall())
        log.warning("%s NACKed %s version %s: %s", self.node_id, type_url, version, message)
        self._emit(type_url, st, version=version, error=message, nonce=nonce)

    def _emit(self, type_url: str, st: T, *, version: str, error: str | None, nonce: str) -> None:
        if self._on_ack is None:
            return
        answered_latest = nonce == st.nonce
        event = AckEvent(
            type_url=type_url,
            node_id=self.node_id,
            version=version,
            error=error,
            nonce=nonce,
            sent_at=st.sent_at if answered_latest else 0.0,
            changed_at=st.changed_at if answered_latest else None,
            received_at=self._clock(),
        )
        try:
            self._on_ack(event)
        except Exception:  # a metrics hook must not break the protocol
            log.exception("on_ack callback failed")
