"""Builders and a raw ADS client for the xds tests (no pytest plugins: plain asyncio with deadlines)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped,unused-ignore]
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf.message import Message

from tcpmesh.xds.cache import Snapshot, SnapshotCache
from tcpmesh.xds.server import XdsServer
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, Node
from tests.references import cluster_references

T = TypeVar("T")

STEP_TIMEOUT = 5.0  # any single expected response
QUIET = 0.3  # how long "no response" is watched for
TEST_TIMEOUT = 30.0


def run(coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT) -> T:
    """Run one async test body with an overall deadline."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def eventually(check: Callable[[], bool], timeout: float = STEP_TIMEOUT) -> None:
    """Poll `check` until it holds or the deadline passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


# ----- resources


def cluster(name: str, *, timeout_s: int = 1) -> Message:
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    c.connect_timeout.seconds = timeout_s
    c.eds_cluster_config.eds_config.ads.SetInParent()
    return c


def cla(name: str, *addresses: str, port: int = 9000) -> Message:
    a = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    group = a.endpoints.add()
    for address in addresses:
        sa = group.lb_endpoints.add().endpoint.address.socket_address
        sa.address, sa.port_value = address, port
    return a


def listener(name: str, port: int, cluster_name: str) -> Message:
    lst = listener_pb2.Listener(name=name)
    sa = lst.address.socket_address
    sa.address, sa.port_value = "127.0.0.1", port
    f = lst.filter_chains.add().filters.add(name="envoy.filters.network.tcp_proxy")
    f.typed_config.Pack(tcp_proxy_pb2.TcpProxy(stat_prefix=name, cluster=cluster_name))
    return lst


def node(node_id: str = "sidecar~127.0.1.1~a.default~default.svc.cluster.local", **labels: str) -> Node:
    return Node(id=node_id, cluster="test", metadata={"LABELS": dict(labels)} if labels else {})


class World:
    """A mutable config the generator reads: per app label, clusters, endpoints and listeners."""

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, list[Message]]] = {}
        self.calls = 0

    def set(self, app: str, *, clusters: Iterable[Message] = (), endpoints: Iterable[Message] = (),
            listeners: Iterable[Message] = ()) -> None:  # fmt: skip
        self.apps[app] = {
            CLUSTER_TYPE: list(clusters),
            ENDPOINT_TYPE: list(endpoints),
            LISTENER_TYPE: list(listeners),
        }

    def generate(self, n: Node) -> Mapping[str, Sequence[Message]]:
        self.calls += 1
        return self.apps.get(n.labels.get("app", ""), {})


def simple_world(app: str = "a", *, timeout_s: int = 1, addr: str = "127.0.1.1", port: int = 15001) -> World:
    w = World()
    set_simple(w, app, timeout_s=timeout_s, addr=addr, port=port)
    return w


def set_simple(w: World, app: str = "a", *, timeout_s: int = 1, addr: str = "127.0.1.1", port: int = 15001) -> None:
    w.set(
        app,
        clusters=[cluster(f"{app}-c1", timeout_s=timeout_s)],
        endpoints=[cla(f"{app}-c1", addr)],
        listeners=[listener(f"{app}-l1", port, f"{app}-c1")],
    )


# ----- requests


def request(
    type_url: str,
    names: Sequence[str] = (),
    *,
    version: str = "",
    nonce: str = "",
    error: str | None = None,
    n: Node | None = None,
) -> Any:
    req = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=list(names), version_info=version, response_nonce=nonce
    )
    if n is not None:
        req.node.CopyFrom(n.to_proto())
    if error is not None:
        req.error_detail.code = 3
        req.error_detail.message = error
    return req


def ack(resp: Any, names: Sequence[str] = ()) -> Any:
    return request(resp.type_url, names, version=resp.version_info, nonce=resp.nonce)


def nack(resp: Any, message: str, *, version: str = "", names: Sequence[str] = ()) -> Any:
    return request(resp.type_url, names, version=version, nonce=resp.nonce, error=message)


def names_in(resp: Any) -> list[str]:
    """Resource names in a SotW response, in order."""
    out = []
    for any_ in resp.resources:
        if any_.type_url == ENDPOINT_TYPE:
            m: Message = endpoint_pb2.ClusterLoadAssignment()
        elif any_.type_url == CLUSTER_TYPE:
            m = cluster_pb2.Cluster()
        else:
            m = listener_pb2.Listener()
        any_.Unpack(m)
        out.append(m.cluster_name if any_.type_url == ENDPOINT_TYPE else m.name)  # type: ignore[attr-defined]
    return out


# ----- a raw ADS client


class AdsClient:
    """One ADS stream from the test's side: `send` requests, `recv` responses, `quiet` asserts silence."""

    def __init__(self, port: int, *, delta: bool = False) -> None:
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        self._out: asyncio.Queue[Any | None] = asyncio.Queue()
        method = stub.DeltaAggregatedResources if delta else stub.StreamAggregatedResources
        self._call = method(self._requests())
        self._in: asyncio.Queue[Any] = asyncio.Queue()
        # Read in the background so a timed-out wait never cancels a read on the call itself.
        self._reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[Any]:
        while (req := await self._out.get()) is not None:
            yield req

    async def _read(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for resp in self._call:
                await self._in.put(resp)

    def send(self, *requests: Any) -> None:
        for req in requests:
            self._out.put_nowait(req)

    async def recv(self, timeout: float = STEP_TIMEOUT) -> Any:
        return await asyncio.wait_for(self._in.get(), timeout)

    async def quiet(self, wait: float = QUIET) -> None:
        try:
            resp = await asyncio.wait_for(self._in.get(), wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected response: {resp.type_url} nonce {resp.nonce}")

    async def close(self) -> None:
        self._out.put_nowait(None)
        self._call.cancel()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._channel.close()


class GeneratingServer(XdsServer):
    """The xds tests' publisher: an XdsServer that builds a group's snapshot from `generate(node)` when the group
    is wanted, and again for every group it serves on `config_changed()` (the shape tcpmesh.publisher has,
    without the translator). A generator that raises leaves the group on its last snapshot (or waiting)."""

    def __init__(self, generate: Callable[[Node], Mapping[str, Sequence[Message]]], **server_kw: Any) -> None:
        super().__init__(on_group_wanted=self._generate_for, on_group_released=self._released, **server_kw)
        self._generate = generate
        self._snapshots = SnapshotCache()
        self._nodes: dict[Hashable, Node] = {}

    def _generate_for(self, group: Hashable, n: Node) -> None:
        self._nodes[group] = n
        with contextlib.suppress(Exception):
            self.set_snapshot(group, self._build(n))

    def _build(self, n: Node) -> Snapshot:
        """The group's snapshot, with the clusters each listener names (what an application reports)."""
        resources = self._generate(n)
        return self._snapshots.build(resources, cluster_references(resources))

    def _released(self, group: Hashable) -> None:
        self._nodes.pop(group, None)

    def config_changed(self) -> None:
        """Generate every served group again and publish the results (from any thread)."""
        changed_at = time.monotonic()
        snapshots = {}
        for group, n in list(self._nodes.items()):
            with contextlib.suppress(Exception):
                snapshots[group] = self._build(n)
        self.set_snapshots(snapshots, changed_at=changed_at)


async def with_server(body: Callable[..., Awaitable[None]], world: World, **server_kw: Any) -> None:
    """Start a GeneratingServer for `world` on a free port, run body(server, port), always stop."""
    server = GeneratingServer(world.generate, **server_kw)
    port = await server.start()
    try:
        await body(server, port)
    finally:
        await server.stop(0)


# ----- delta requests


def delta_request(
    type_url: str,
    subscribe: Sequence[str] = (),
    unsubscribe: Sequence[str] = (),
    *,
    nonce: str = "",
    error: str | None = None,
    initial: Mapping[str, str] | None = None,
    n: Node | None = None,
) -> Any:
    req = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=list(subscribe),
        resource_names_unsubscribe=list(unsubscribe),
        response_nonce=nonce,
        initial_resource_versions=dict(initial or {}),
    )
    if n is not None:
        req.node.CopyFrom(n.to_proto())
    if error is not None:
        req.error_detail.code = 3
        req.error_detail.message = error
    return req


def delta_ack(resp: Any) -> Any:
    return delta_request(resp.type_url, nonce=resp.nonce)


def delta_nack(resp: Any, message: str) -> Any:
    return delta_request(resp.type_url, nonce=resp.nonce, error=message)


def delta_versions(resp: Any) -> dict[str, str]:
    """name -> version of the resources a DeltaDiscoveryResponse carries."""
    return {r.name: r.version for r in resp.resources}
