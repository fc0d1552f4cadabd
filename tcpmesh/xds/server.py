"""The grpc.aio ADS server: moves messages between gRPC streams and the sans-I/O stream state machines.

All protocol decisions live in sotw.py (and delta.py); this module owns the I/O: one response queue per stream
(so pushes leave in the order the state machine produced them), the snapshot published for each node group, and
the registry of connected proxies for status pages. It never computes resources: the application publishes a
snapshot per group with `set_snapshot` (go-control-plane's SnapshotCache seam), and is told through
`on_group_wanted` when a stream of a group it has not published for connects.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped,unused-ignore]  # no stubs installed (types-grpcio is not a dependency)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf.message import Message

from tcpmesh.xds.cache import Snapshot
from tcpmesh.xds.delta import DeltaStream
from tcpmesh.xds.identity import PeerIdentity, authorize
from tcpmesh.xds.limits import DEFAULT_LIMITS, StreamLimits, StreamRefused, TypeUrlGuard
from tcpmesh.xds.payload import BodyCache, DeltaResponse, SotwResponse, serialize
from tcpmesh.xds.sotw import SotwStream
from tcpmesh.xds.status import AckCallback, ProxyStatus, TypeStatus
from tcpmesh.xds.stream import NameSets
from tcpmesh.xds.types import CLUSTER_TYPE, LISTENER_TYPE, Node

log = logging.getLogger(__name__)

PushCallback = Callable[[str], None]
"""Called with the type URL of every response queued for a proxy."""

DEFAULT_FLOW_TIMEOUT = 5.0
DEFAULT_MAX_CONCURRENT_PUSHES = 100  # istiod's PILOT_PUSH_THROTTLE ceiling

RESOURCES_PER_SLOT = 250
"""A response takes one push slot per this many resources (plus one): 1 000 simultaneous initial syncs of
thousands of resources write a few at a time, so only a few full payloads are serialised and buffered at once,
while small incremental pushes still go out 100 at a time."""

MAX_QUEUED = 256
"""Responses waiting on one stream; a client this far behind is not reading, so its stream is ended (Envoy
reconnects and gets the current state). SotW pushes coalesce per type, so only delta streams get near it."""

_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"

IDLE_GROUPS_KEPT = 64
"""Groups whose streams all closed whose snapshots are kept (and kept current by the publisher), so a reconnect
is served at once; beyond this the oldest is released (`on_group_released`)."""

GroupKey = Callable[[Node], Hashable]
"""Maps a node to its config group: nodes in one group get one snapshot (go-control-plane NodeHash)."""

GroupWanted = Callable[[Hashable, Node], None]
"""Called on the event loop with a group (and the node of its first stream) that has no snapshot yet; the
application answers, now or later and from any thread, with `set_snapshot(group, snapshot)`."""

GroupReleased = Callable[[Hashable], None]
"""Called on the event loop when the server forgets a group: it need not be published for any more."""


class _PushSlots:
    """A FIFO semaphore whose permits are taken by weight (see RESOURCES_PER_SLOT)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, weight: int) -> int:
        weight = max(1, min(weight, self.size))
        if not self._waiters and self.free >= weight:
            self.free -= weight
            return weight
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        item = (weight, waiter)
        self._waiters.append(item)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(weight)  # granted, then cancelled: give it back
            else:
                self._waiters.remove(item)
                self._wake()
            raise
        return weight

    def release(self, weight: int) -> None:
        self.free += weight
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.free >= self._waiters[0][0]:
            weight, waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self.free -= weight
            waiter.set_result(None)


def _weight(response: Any) -> int:
    if isinstance(response, SotwResponse):
        return 1 + len(response.body.entries) // RESOURCES_PER_SLOT
    if isinstance(response, DeltaResponse):
        return 1 + len(response.updates) // RESOURCES_PER_SLOT
    return 1


_EARNING_TYPES = frozenset((LISTENER_TYPE, CLUSTER_TYPE))
"""Each listener or cluster sent may be followed by a request for what it names (ECDS config, endpoints)."""


def _count(response: Any) -> int:
    if isinstance(response, SotwResponse):
        return len(response.body.entries)
    if isinstance(response, DeltaResponse):
        return len(response.updates)
    return len(getattr(response, "resources", ()))


def node_group(node: Node) -> Hashable:
    """Default grouping: nodes that describe themselves identically share a snapshot."""
    return node


class _StreamState(Protocol):
    """What the server needs from a per-stream protocol state machine (SotW or delta)."""

    node: Node | None
    snapshot: Snapshot | None

    def on_request(self, request: Any) -> list[Any]: ...

    def on_resources_changed(self, snapshot: Snapshot, *, changed_at: float | None = None) -> list[Any]: ...

    def type_status(self) -> dict[str, TypeStatus]: ...

    def timed_out(self) -> bool: ...

    def poll(self) -> list[Any]: ...


@dataclass(eq=False)
class _Connection:
    id: int
    protocol: str
    state: _StreamState
    connected_since: float
    pending: collections.deque[Any] = field(default_factory=collections.deque)
    """Responses not written yet, in the order the state machine produced them."""
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    """End the stream once the response being written (if any) is out; what is pending is dropped."""
    finishing: bool = False
    """End the stream once everything pending is written."""
    group: Hashable = None
    refused: StreamRefused | None = None
    """Why the stream is being ended (a broken per-stream limit), for the gRPC status."""
    guard: TypeUrlGuard | None = None
    """The stream's request limits; credited with every resource sent."""

    def put(self, response: Any) -> None:
        """Queue a response. A SotW response replaces an unsent one of its type (a partial one, which only adds
        names to a subscription, takes the unsent one's resources along): it carries the whole current state of
        the type, so the older one would only make the client apply a state already outdated (its
        nonce is never answered, which the state machine handles like any superseded response). The newer one
        goes to the end, after everything produced before it, so make-before-break order holds. Delta responses
        carry only changes and are never dropped."""
        if isinstance(response, SotwResponse) and self.pending:
            type_url = response.type_url
            for i, queued in enumerate(self.pending):
                if isinstance(queued, SotwResponse) and queued.type_url == type_url:
                    del self.pending[i]
                    if not response.complete:  # it adds to what the unsent one carries: carry both
                        response = response.after(queued)
                    break
        self.pending.append(response)
        if len(self.pending) > MAX_QUEUED:
            log.warning("ADS stream %d: %d responses unsent; closing it", self.id, len(self.pending))
            self.close()
        self.wakeup.set()

    def close(self) -> None:
        self.closed = True
        self.pending.clear()
        self.wakeup.set()

    def finish(self) -> None:
        self.finishing = True
        self.wakeup.set()

    async def get(self) -> Any | None:
        """The next response to write; None once the stream is to end."""
        while not self.pending and not self.closed and not self.finishing:
            self.wakeup.clear()
            await self.wakeup.wait()
        if self.closed or not self.pending:
            return None
        return self.pending.popleft()


class XdsServer:
    """An ADS server (SotW and delta) for the snapshots published per node group.

    `set_snapshot(group, snapshot)` (any thread) replaces a group's snapshot and pushes what changed to its
    streams; a stream whose group has none yet waits for one. `on_ack` receives every ACK and NACK.
    """

    def __init__(
        self,
        *,
        group_key: GroupKey = node_group,
        on_group_wanted: GroupWanted | None = None,
        on_group_released: GroupReleased | None = None,
        on_ack: AckCallback | None = None,
        make_before_break: bool = False,
        flow_timeout: float | None = DEFAULT_FLOW_TIMEOUT,
        max_concurrent_pushes: int = DEFAULT_MAX_CONCURRENT_PUSHES,
        on_push: PushCallback | None = None,
        limits: StreamLimits = DEFAULT_LIMITS,
    ) -> None:
        """`make_before_break` orders pushes by the clusters each snapshot entry references (its `references`,
        reported by the application that built it); `flow_timeout` (None:
        off) holds a type's next push until its previous one is answered; `max_concurrent_pushes` bounds the
        streams writing at once during a fan-out."""
        self._make_before_break = make_before_break
        self._limits = limits
        self._flow_timeout = flow_timeout
        self._push_slots_size = max(1, max_concurrent_pushes)
        self._push_slots: _PushSlots | None = None
        self._on_push = on_push
        self._poller: asyncio.Task[None] | None = None
        self._group_key = group_key
        self.on_group_wanted = on_group_wanted
        self.on_group_released = on_group_released
        self._on_ack = on_ack
        # Shared by every stream: SotW bodies encoded once per type snapshot and subscription, and interned
        # subscription name sets.
        self._bodies = BodyCache()
        self._name_sets = NameSets()
        self._conns: dict[int, _Connection] = {}
        self._ids = itertools.count(1)
        # The snapshot published for each group; kept while the group has streams, and for IDLE_GROUPS_KEPT
        # idle groups after.
        self._groups: dict[Hashable, Snapshot] = {}
        # Groups asked for (on_group_wanted) and not published yet.
        self._wanted: set[Hashable] = set()
        # Groups with no stream left, oldest first.
        self._idle: dict[Hashable, None] = {}
        self._server: grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----- lifecycle

    def add_to_server(self, server: grpc.aio.Server) -> None:
        """Register the ADS service on a server the caller owns (before it starts).

        Like ads_pb2_grpc's registration, except that responses are serialised by payload.serialize, which also
        takes the shared-payload responses the stream state machines produce."""
        servicer = _AdsServicer(self)
        handlers = {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                servicer.StreamAggregatedResources,
                request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                response_serializer=serialize,
            ),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                servicer.DeltaAggregatedResources,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=serialize,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, handlers),))
        if hasattr(server, "add_registered_method_handlers"):
            server.add_registered_method_handlers(_SERVICE, handlers)

    async def start(
        self, address: str = "127.0.0.1:0", *, server: grpc.aio.Server | None = None, credentials: Any = None
    ) -> int:
        """Add the ADS service (to `server`, or a new one), bind `address`, start; returns the port.

        Pass your own not-yet-started `server` to serve health or other services on the same port, and
        `grpc.ssl_server_credentials(...)` for TLS (plaintext without).
        """
        self._loop = asyncio.get_running_loop()
        self._server = server if server is not None else grpc.aio.server()
        self.add_to_server(self._server)
        if credentials is not None:
            port: int = self._server.add_secure_port(address, credentials)
        else:
            port = self._server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot bind ADS server to {address}")
        await self._server.start()
        log.info("ADS server listening on %s (port %d)", address, port)
        return port

    async def stop(self, grace: float | None = None) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        for conn in list(self._conns.values()):
            conn.finish()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    # ----- pushing

    def set_snapshot(
        self, group: Hashable, snapshot: Snapshot, *, changed_at: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Serve `snapshot` to `group` from now on and push what changed to its streams. From any thread: off the
        loop it is applied on the loop, and the returned future is done once it has been."""
        return self.set_snapshots({group: snapshot}, changed_at=changed_at)

    def set_snapshots(
        self, snapshots: Mapping[Hashable, Snapshot], *, changed_at: float | None = None
    ) -> concurrent.futures.Future[None]:
        """`set_snapshot` for several groups at once (one config change): applied together on the loop."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._apply, dict(snapshots), changed_at, done)
                return done
        self._apply(snapshots, changed_at, done)
        return done

    def preload(self, snapshots: Mapping[Hashable, Snapshot]) -> list[Hashable]:
        """Snapshots for groups nobody asked for yet (an earlier run's, saved): served to a group's first stream
        at once, without asking for it, so whoever preloads must also publish for those groups. They are idle
        groups until a stream joins; as many are taken as IDLE_GROUPS_KEPT allows. Returns the groups taken.
        Call before `start`."""
        if self._loop is not None:
            raise RuntimeError("preload before the server starts")
        taken = []
        for group, snapshot in snapshots.items():
            if group not in self._groups and len(self._idle) < IDLE_GROUPS_KEPT:
                self._groups[group] = snapshot
                self._idle[group] = None
                taken.append(group)
        return taken

    def _apply(
        self, snapshots: Mapping[Hashable, Snapshot], changed_at: float | None, done: concurrent.futures.Future[None]
    ) -> None:
        try:
            wanted = {g: s for g, s in snapshots.items() if g in self._groups or g in self._wanted}
            if len(wanted) < len(snapshots):
                log.debug("ignoring snapshots of %d groups the server no longer serves", len(snapshots) - len(wanted))
            self._groups.update(wanted)
            self._wanted.difference_update(wanted)
            pushes = 0
            if wanted:
                now = time.monotonic() if changed_at is None else changed_at
                for conn in list(self._conns.values()):
                    snapshot = wanted.get(conn.group) if conn.group is not None else None
                    if snapshot is None or snapshot is conn.state.snapshot:
                        continue
                    # A stream's first snapshot answers its requests: no config change to time it from.
                    at = now if conn.state.snapshot is not None else None
                    pushes += self._enqueue(conn, conn.state.on_resources_changed(snapshot, changed_at=at))
            log.debug("%d snapshots published: %d responses to %d streams", len(wanted), pushes, len(self._conns))
        finally:
            done.set_result(None)

    def _enqueue(self, conn: _Connection, responses: list[Any]) -> int:
        if conn.closed or conn.finishing:
            return 0
        for response in responses:
            conn.put(response)
            if conn.guard is not None and response.type_url in _EARNING_TYPES:
                conn.guard.credit(_count(response))
            if self._on_push is not None:
                try:
                    self._on_push(response.type_url)
                except Exception:  # a metrics hook must not break the protocol
                    log.exception("on_push callback failed")
        return len(responses)

    async def _poll_forever(self, interval: float) -> None:
        """Flow control's failsafe: release pushes whose predecessor was never answered."""
        while True:
            await asyncio.sleep(interval)
            for conn in list(self._conns.values()):
                if conn.state.timed_out():
                    self._enqueue(conn, conn.state.poll())

    # ----- views

    def status(self, node_id: str | None = None) -> list[ProxyStatus]:
        """Per connected stream (that sent its node; only `node_id`'s when given): what was sent, ACKed and
        NACKed per type."""
        return [
            ProxyStatus(
                stream_id=c.id,
                node=c.state.node,
                connected_since=c.connected_since,
                protocol=c.protocol,
                types=c.state.type_status(),
            )
            for c in self._conns.values()
            if c.state.node is not None and (node_id is None or c.state.node.id == node_id)
        ]

    def snapshot(self, node_id: str) -> Snapshot | None:
        """The snapshot being served to the (first connected) proxy with this node id."""
        for conn in self._conns.values():
            if conn.state.node is not None and conn.state.node.id == node_id and conn.state.snapshot is not None:
                return conn.state.snapshot
        return None

    def snapshots(self) -> dict[str, Snapshot]:
        """`snapshot` for every connected node id, in one pass (a status page over 1 000 streams)."""
        out: dict[str, Snapshot] = {}
        for conn in self._conns.values():
            node, snapshot = conn.state.node, conn.state.snapshot
            if node is not None and snapshot is not None:
                out.setdefault(node.id, snapshot)
        return out

    def resources(self, node_id: str) -> Mapping[str, Mapping[str, Message]]:
        """What is being served to that proxy: messages by name per type URL; empty if not connected."""
        snapshot = self.snapshot(node_id)
        return snapshot.messages() if snapshot is not None else {}

    # ----- streams

    async def serve_stream(
        self, protocol: str, requests: AsyncIterator[Any], peer: PeerIdentity | None = None
    ) -> AsyncIterator[Any]:
        """Run one ADS stream: yields the responses to write. Used by the gRPC servicer and by tests.

        With ``peer`` (the client certificate's identity) the node the stream claims must match it (identity.py)."""
        self._ensure_started()
        common: dict[str, Any] = {
            "on_ack": self._on_ack,
            "make_before_break": self._make_before_break,
            "flow_timeout": self._flow_timeout,
            "name_sets": self._name_sets,
        }
        state: _StreamState = (
            DeltaStream(**common) if protocol == "delta" else SotwStream(bodies=self._bodies, **common)
        )
        conn = _Connection(next(self._ids), protocol, state, time.time())
        self._conns[conn.id] = conn
        reader = asyncio.create_task(self._read(conn, requests, peer), name=f"ads-read-{conn.id}")
        try:
            slots = self._push_slots
            assert slots is not None
            while (response := await conn.get()) is not None:
                # Bounded fan-out: at most so many streams write at once after a config change (large responses,
                # such as initial syncs, count for several), and the payload is only serialised inside the slot.
                weight = await slots.acquire(_weight(response))
                try:
                    yield response
                finally:
                    slots.release(weight)
        finally:
            reader.cancel()
            del self._conns[conn.id]
            self._forget_group(conn)
            log.info("ADS %s stream %d closed (node %r)", protocol, conn.id, state.node.id if state.node else "")
        if conn.refused is not None:
            raise conn.refused

    async def _read(self, conn: _Connection, requests: AsyncIterator[Any], peer: PeerIdentity | None) -> None:
        guard = conn.guard = TypeUrlGuard(self._limits)
        try:
            async for request in requests:
                guard.check(request.type_url)
                if peer is not None and conn.state.node is None and request.HasField("node"):
                    denied = authorize(Node.from_proto(request.node), peer)
                    if denied is not None:
                        raise StreamRefused("PERMISSION_DENIED", f"node {request.node.id!r}: {denied}")
                self._handle(conn, request)
        except StreamRefused as refused:
            node_id = conn.state.node.id if conn.state.node is not None else ""
            log.warning("ADS stream %d (node %r) refused: %s", conn.id, node_id, refused.details)
            conn.refused = refused
            conn.close()
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken request or client: end this stream only, Envoy retries
            log.exception("ADS stream %d failed", conn.id)
        conn.finish()

    def _handle(self, conn: _Connection, request: Any) -> None:
        state = conn.state
        had_node = state.node is not None
        self._enqueue(conn, state.on_request(request))
        if state.node is None:
            # Nothing can be served without knowing the proxy; the requests are kept until a node arrives.
            log.warning("ADS stream %d: request without node on a stream that never sent one", conn.id)
        elif not had_node:
            log.info("ADS %s stream %d from node %r", conn.protocol, conn.id, state.node.id)
            self._join_group(conn, state.node)

    def _join_group(self, conn: _Connection, node: Node) -> None:
        """Serve the group's snapshot, or wait for it: the publisher is asked once per group."""
        conn.group = group = self._group_key(node)
        self._idle.pop(group, None)
        snapshot = self._groups.get(group)
        if snapshot is not None:
            self._enqueue(conn, conn.state.on_resources_changed(snapshot))
            return
        if group in self._wanted:
            return
        self._wanted.add(group)
        if self.on_group_wanted is None:
            log.warning("ADS stream %d: no snapshot for its group and nobody to ask for one", conn.id)
            return
        try:
            self.on_group_wanted(group, node)
        except Exception:  # the stream keeps waiting; a later publication serves it
            log.exception("asking for the snapshot of node %r failed", node.id)

    def _ensure_started(self) -> None:
        if self._push_slots is None:
            self._push_slots = _PushSlots(self._push_slots_size)
        if self._poller is None and self._flow_timeout is not None:
            interval = min(1.0, max(0.05, self._flow_timeout / 4))
            self._poller = asyncio.create_task(self._poll_forever(interval), name="ads-flow-failsafe")

    def _forget_group(self, conn: _Connection) -> None:
        """The group's snapshot outlives its last stream (bounded), so a proxy that reconnects is served at once."""
        group = conn.group
        if group is None or any(c.group == group for c in self._conns.values()):
            return
        if group not in self._groups:
            self._wanted.discard(group)  # never published: nothing to keep
            self._release(group)
            return
        self._idle[group] = None
        while len(self._idle) > IDLE_GROUPS_KEPT:
            oldest = next(iter(self._idle))
            del self._idle[oldest]
            self._groups.pop(oldest, None)
            self._release(oldest)

    def _release(self, group: Hashable) -> None:
        if self.on_group_released is None:
            return
        try:
            self.on_group_released(group)
        except Exception:
            log.exception("on_group_released callback failed")


class _AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, server: XdsServer) -> None:
        self._server = server

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for response in self._server.serve_stream("sotw", request_iterator, _peer(context)):
                yield response
        except StreamRefused as refused:
            await context.abort(getattr(grpc.StatusCode, refused.code), refused.details)

    async def DeltaAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for response in self._server.serve_stream("delta", request_iterator, _peer(context)):
                yield response
        except StreamRefused as refused:
            await context.abort(getattr(grpc.StatusCode, refused.code), refused.details)


def _peer(context: grpc.aio.ServicerContext[Any, Any]) -> PeerIdentity | None:
    """The verified client certificate's identity on mutual TLS; None on plaintext or server-only TLS."""
    return PeerIdentity.from_auth_context(context.auth_context())
