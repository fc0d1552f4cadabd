"""Per-stream ADS limits (issue 10): a stream inventing type URLs or flooding requests is ended with a clear gRPC
status, and while an abusive client keeps at it a well-behaved proxy's pushes stay within 50 ms of their usual
latency."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from tcpmesh.apiclient import request_json
from tcpmesh.xds import limits as limits_module
from tcpmesh.xds.limits import StreamLimits, StreamRefused, TypeUrlGuard
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, Node
from tests.security.conftest import ROOT, SAMPLES, start_server
from tests.xds.ads_testkit import World, node, run, simple_world, with_server

GATEWAY = Node(
    id="router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local",
    cluster="istio-ingressgateway.istio-system",
    metadata={"LABELS": {"istio": "ingressgateway", "app": "istio-ingressgateway"}, "NAMESPACE": "istio-system"},
)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_guard_counts_unknown_type_urls_only() -> None:
    guard = TypeUrlGuard(StreamLimits(max_unknown_type_urls=2))
    for _ in range(10):
        for url in (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, "type.googleapis.com/x.A", "type.googleapis.com/x.B"):
            guard.check(url)
    with pytest.raises(StreamRefused, match="more than 2 distinct type URLs") as info:
        guard.check("type.googleapis.com/x.C")
    assert info.value.code == "RESOURCE_EXHAUSTED"
    with pytest.raises(StreamRefused, match="longer than 256") as long:
        TypeUrlGuard().check("t" * 257)
    assert long.value.code == "INVALID_ARGUMENT"


def test_guard_rate_is_a_token_bucket() -> None:
    clock = _Clock()
    guard = TypeUrlGuard(StreamLimits(requests_per_second=10, request_burst=5), clock)
    for _ in range(5):
        guard.check(LISTENER_TYPE)
    with pytest.raises(StreamRefused, match="more than 5 requests at once or 10/s"):
        guard.check(LISTENER_TYPE)
    guard = TypeUrlGuard(StreamLimits(requests_per_second=10, request_burst=5), clock)
    for _ in range(100):  # 10/s sustained is fine
        clock.now += 0.1
        guard.check(LISTENER_TYPE)


def test_listeners_sent_earn_one_request_each_up_to_a_lifetime_cap() -> None:
    """Envoy asks for a listener's ECDS config as each listener arrives: 10 000 listeners, 10 000 requests."""
    clock = _Clock()
    guard = TypeUrlGuard(StreamLimits(requests_per_second=10, request_burst=5), clock)
    guard.credit(3)
    for _ in range(5 + 3):
        guard.check(EXTENSION_CONFIG_TYPE)
    with pytest.raises(StreamRefused, match="more than 5 requests at once"):
        guard.check(EXTENSION_CONFIG_TYPE)
    capped = TypeUrlGuard(StreamLimits(requests_per_second=10, request_burst=5), clock)
    for _ in range(3):
        capped.credit(limits_module._MAX_EARNED)  # a client making the server re-send gains no more
    for _ in range(5 + limits_module._MAX_EARNED):
        capped.check(EXTENSION_CONFIG_TYPE)
    with pytest.raises(StreamRefused):
        capped.check(EXTENSION_CONFIG_TYPE)


async def _status_of(port: int, requests: list[Any]) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)

        async def gen() -> AsyncIterator[Any]:
            for req in requests:
                yield req
            # Keep the stream open without writing more (a write racing the server's end of the stream fails on the
            # client with INTERNAL instead of showing the server's status): the server must end it.
            await asyncio.sleep(30)

        call = stub.StreamAggregatedResources(gen())
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc
    raise AssertionError("the server did not end the stream")


def test_garbage_type_urls_end_the_stream_with_resource_exhausted() -> None:
    world: World = simple_world()

    async def body(_server: Any, port: int) -> None:
        reqs = [discovery_pb2.DiscoveryRequest(type_url=f"type.googleapis.com/garbage.T{i}") for i in range(9)]
        reqs[0].node.CopyFrom(node().to_proto())  # the 9th unserved type breaks the limit; nothing is sent after
        exc = await asyncio.wait_for(_status_of(port, reqs), 20)
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "distinct type URLs this server does not serve" in (exc.details() or "")

    run(with_server(body, world))


def test_request_flood_ends_the_stream() -> None:
    world: World = simple_world()

    async def body(_server: Any, port: int) -> None:
        reqs = [discovery_pb2.DiscoveryRequest(type_url=LISTENER_TYPE) for _ in range(21)]
        reqs[0].node.CopyFrom(node().to_proto())
        exc = await asyncio.wait_for(_status_of(port, reqs), 20)
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "requests at once" in (exc.details() or "")

    # Almost no refill: on a loaded machine 21 requests may take over a second to arrive.
    run(with_server(body, world, limits=StreamLimits(request_burst=20, requests_per_second=0.01)))


class _Proxy:
    """A well-behaved SotW client: wildcard CDS, EDS, LDS; ACKs every response; notes when each LDS arrives."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.listeners: asyncio.Queue[float] = asyncio.Queue()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        first = discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE)
        first.node.CopyFrom(GATEWAY.to_proto())
        for req in (first, discovery_pb2.DiscoveryRequest(type_url=LISTENER_TYPE)):
            self.out.put_nowait(req)
        self.call = stub.StreamAggregatedResources(self._requests())
        self.reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            yield await self.out.get()

    async def _read(self) -> None:
        eds_asked = False
        async for resp in self.call:
            if resp.type_url == LISTENER_TYPE:
                self.listeners.put_nowait(time.monotonic())
            ack = discovery_pb2.DiscoveryRequest(
                type_url=resp.type_url, version_info=resp.version_info, response_nonce=resp.nonce
            )
            self.out.put_nowait(ack)
            if resp.type_url == CLUSTER_TYPE and not eds_asked:
                eds_asked = True
                self.out.put_nowait(discovery_pb2.DiscoveryRequest(type_url=ENDPOINT_TYPE))

    async def close(self) -> None:
        self.call.cancel()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await self.reader
        await self.channel.close()


async def _push_latencies(proxy: _Proxy, http: str, token: str, rounds: int) -> list[float]:
    shifts = [SAMPLES / "tcp-echo-shift" / "tcp-echo-20-v2.yaml", SAMPLES / "tcp-echo-shift" / "tcp-echo-80-v2.yaml"]
    out = []
    for i in range(rounds):
        while not proxy.listeners.empty():
            proxy.listeners.get_nowait()
        path = shifts[i % 2]
        query = urllib.parse.urlencode({"source": path.name})
        t0 = time.monotonic()
        code, _ = await asyncio.to_thread(
            request_json, http, f"/api/apply?{query}", body=path.read_bytes(), token=token
        )
        assert code == 200
        received = await asyncio.wait_for(proxy.listeners.get(), 15)
        out.append(received - t0)
    return out


@pytest.mark.timeout(180)
def test_abusive_stream_does_not_slow_a_well_behaved_proxy(tmp_path: Path) -> None:
    # Inline weights: each shift is then an LDS push, the one push this plain client subscribes to.
    cp = start_server(tmp_path, "--inline-weights")
    try:

        async def body() -> tuple[list[float], list[float], dict[str, Any]]:
            proxy = _Proxy(cp.ports.ads)
            try:
                await asyncio.wait_for(proxy.listeners.get(), 15)  # initial sync
                await _push_latencies(proxy, cp.http, cp.token, 2)  # warm up
                usual = await _push_latencies(proxy, cp.http, cp.token, 12)
                attacker = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tests.security.ads_attacker", str(cp.ports.ads), "15",
                    cwd=ROOT, stdout=subprocess.PIPE,
                )  # fmt: skip
                assert attacker.stdout is not None
                # Measure once the attack is on (its first stream refused), not after a guessed delay.
                assert (await asyncio.wait_for(attacker.stdout.readline(), 30)).strip() == b"attacking"
                attacked = await _push_latencies(proxy, cp.http, cp.token, 12)
                stdout, _ = await asyncio.wait_for(attacker.communicate(), 60)
                return usual, attacked, json.loads(stdout)
            finally:
                await proxy.close()

        usual, attacked, summary = run(body(), timeout=150)
    finally:
        cp.stop()
    codes = summary["codes"]
    # The client sees RESOURCE_EXHAUSTED, or INTERNAL when its own write races the server's end of the stream;
    # the server log shows every stream refused. Only the last stream may end by the attacker's own deadline.
    assert codes.get("RESOURCE_EXHAUSTED", 0) >= 10, summary
    assert codes.pop("HALF_CLOSED", 0) <= 1, summary
    assert set(codes) <= {"RESOURCE_EXHAUSTED", "INTERNAL"}, summary
    assert "distinct type URLs" in summary["details"]["RESOURCE_EXHAUSTED"]
    refused = cp.log_path.read_text().count("refused: more than 8 distinct type URLs")
    assert refused >= sum(codes.values()) - 1, (refused, summary)
    base, hit = statistics.median(usual), statistics.median(attacked)
    print(f"push latency median: usual {base * 1000:.1f} ms, under attack {hit * 1000:.1f} ms; attacker {summary}")
    assert hit <= max(2 * base, base + 0.050), (usual, attacked)
