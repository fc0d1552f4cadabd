"""Limits and hostile input: debounce, config-directory file safety, resource count, gRPC message size, and a
hypothesis fuzz of raw requests against the real gRPC server (SotW and delta)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
import pytest
from envoy.service.discovery.v3 import discovery_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpmesh.commands.serve import MAX_GRPC_MESSAGE
from tcpmesh.controlplane import ControlPlane, Debouncer
from tcpmesh.model.yamlsource import load_documents
from tcpmesh.store import open_store
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from tests.xds.ads_testkit import AdsClient, GeneratingServer, node, request, run, simple_world

VS = "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  hosts: [a]\n"


def test_debounce_waits_for_quiet_but_not_past_max_delay() -> None:
    d = Debouncer(quiet=0.1, max_delay=1.0)
    assert d.due_in(0.0) is None
    d.event(0.0)
    assert d.due_in(0.05) == pytest.approx(0.05)
    t = 0.0
    for _ in range(30):  # a steady trickle every 50 ms never goes quiet ...
        t += 0.05
        d.event(t)
    assert d.due_in(t) == 0.0  # ... but the max delay (1 s after the first event) has passed
    assert d.fire() == 31
    assert d.due_in(t) is None


def test_config_dir_reads_only_regular_files_inside_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(VS.format(name="secret"))
    config = tmp_path / "config"
    (config / "sub.yaml").mkdir(parents=True)
    (config / "sub.yaml" / "inner.yaml").write_text(VS.format(name="inner"))
    (config / "ok.yaml").write_text(VS.format(name="ok"))
    os.symlink(outside, config / "link.yaml")
    docs, problems = load_documents([config])
    assert [d.data["metadata"]["name"] for d in docs] == ["ok"]
    assert sorted(Path(p.file).name for p in problems) == ["link.yaml", "sub.yaml"]
    assert all(not p.is_error and "skipped" in p.message for p in problems)


def test_too_many_resources_is_a_clear_rejection(tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    route = "  tcp:\n  - route:\n    - destination: {host: a}\n"
    assert store.apply("---\n".join(VS.format(name=f"vs{i}") + route for i in range(5))).ok
    cp = ControlPlane(store, max_resources=4)
    accepted, problems = cp.reload()
    assert not accepted
    assert any("5 resources; the limit is 4" in p.message for p in problems)
    assert cp.generation == 0
    store.close()


def test_grpc_message_size_limit_is_enforced() -> None:
    async def body() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_GRPC_MESSAGE)])
        xds = GeneratingServer(simple_world().generate)
        port = await xds.start(server=server)
        try:
            async with grpc.aio.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
            ) as channel:
                from envoy.service.discovery.v3 import ads_pb2_grpc

                stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
                big = request(CLUSTER_TYPE, ["x" * (MAX_GRPC_MESSAGE + 1024)], n=node(app="a"))
                call = stub.StreamAggregatedResources(iter([big]))
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _ in call:
                        pass
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            await xds.stop(0)

    run(body())


TYPES = st.sampled_from([CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, "", "type.googleapis.com/x.Y", "*", "\x00"])
NAMES = st.lists(st.sampled_from(["*", "a-c1", "", "zz", "\u00e9", "a" * 300]), max_size=4)
TEXT = st.text(max_size=20)


def _sotw(draw: Any) -> Any:
    r = discovery_pb2.DiscoveryRequest(
        type_url=draw(TYPES), resource_names=draw(NAMES), version_info=draw(TEXT), response_nonce=draw(TEXT)
    )
    if draw(st.booleans()):
        r.node.CopyFrom(node(app=draw(st.sampled_from(["a", "b", ""]))).to_proto())
    if draw(st.booleans()):
        r.error_detail.code = draw(st.integers(0, 16))
        r.error_detail.message = draw(TEXT)
    return r


def _delta(draw: Any) -> Any:
    r = discovery_pb2.DeltaDiscoveryRequest(
        type_url=draw(TYPES),
        resource_names_subscribe=draw(NAMES),
        resource_names_unsubscribe=draw(NAMES),
        response_nonce=draw(TEXT),
        initial_resource_versions=draw(st.dictionaries(st.sampled_from(["a-c1", "zz", "*"]), TEXT, max_size=2)),
    )
    if draw(st.booleans()):
        r.node.CopyFrom(node(app="a").to_proto())
    if draw(st.booleans()):
        r.error_detail.message = draw(TEXT)
    return r


@st.composite
def request_lists(draw: Any) -> tuple[bool, list[Any]]:
    delta = draw(st.booleans())
    make = _delta if delta else _sotw
    return delta, [make(draw) for _ in range(draw(st.integers(1, 8)))]


@pytest.fixture(scope="module")
def fuzz_server() -> Any:
    """One real server for all examples, on its own loop thread."""
    import threading

    loop = asyncio.new_event_loop()
    world = simple_world()
    xds = GeneratingServer(world.generate)
    port = loop.run_until_complete(xds.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield xds, port, loop
    asyncio.run_coroutine_threadsafe(xds.stop(0), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@settings(max_examples=60, deadline=None)
@given(case=request_lists())
def test_fuzzed_requests_never_crash_the_server(fuzz_server: Any, case: tuple[bool, list[Any]]) -> None:
    _xds, port, loop = fuzz_server
    delta, requests = case

    async def body() -> None:
        c = AdsClient(port, delta=delta)
        c.send(*requests)
        with_node = any(r.HasField("node") for r in requests)
        try:
            if with_node and any(r.type_url in (CLUSTER_TYPE, LISTENER_TYPE) for r in requests):
                await c.recv(timeout=5)  # a valid wildcard request gets an answer
        except TimeoutError:
            pass  # e.g. an explicit non-wildcard name that does not exist: no answer is correct
        finally:
            await c.close()

    run(body(), timeout=20)
    # The server is still healthy: a clean client gets its config.

    async def healthy() -> None:
        c = AdsClient(port)
        c.send(request(CLUSTER_TYPE, n=node(app="a")))
        resp = await c.recv()
        assert resp.type_url == CLUSTER_TYPE
        await c.close()

    run(healthy(), timeout=20)
    assert asyncio.run_coroutine_threadsafe(asyncio.sleep(0, result=True), loop).result(5)
