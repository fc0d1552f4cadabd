"""Protocol tests: a real grpc.aio XdsServer on 127.0.0.1:0 driven by a raw ADS client."""

from __future__ import annotations

import threading
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tcpmesh.xds.status import AckEvent, SyncState
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from tests.xds.ads_testkit import (
    AdsClient,
    GeneratingServer,
    World,
    ack,
    cla,
    cluster,
    eventually,
    listener,
    nack,
    names_in,
    node,
    request,
    run,
    set_simple,
    simple_world,
    with_server,
)

NODE = node(app="a")


async def sync(c: AdsClient, *, eds: tuple[str, ...] = ("a-c1",), n: Any = NODE) -> dict[str, Any]:
    """Do what Envoy does on connect: CDS, then EDS for its clusters, then LDS, ACKing each."""
    got = {}
    c.send(request(CLUSTER_TYPE, n=n))
    got[CLUSTER_TYPE] = await c.recv()
    c.send(ack(got[CLUSTER_TYPE]), request(ENDPOINT_TYPE, eds))
    got[ENDPOINT_TYPE] = await c.recv()
    c.send(ack(got[ENDPOINT_TYPE], eds), request(LISTENER_TYPE))
    got[LISTENER_TYPE] = await c.recv()
    c.send(ack(got[LISTENER_TYPE]))
    await c.quiet()
    return got


def test_first_responses_follow_ads_order_and_ack_is_quiet() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        c.send(request(CLUSTER_TYPE, n=NODE), request(ENDPOINT_TYPE, ["a-c1"]), request(LISTENER_TYPE))
        first = [await c.recv() for _ in range(3)]
        assert [r.type_url for r in first] == [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE]
        assert [names_in(r) for r in first] == [["a-c1"], ["a-c1"], ["a-l1"]]
        assert len({r.nonce for r in first}) == 3
        c.send(ack(first[0]), ack(first[1], ["a-c1"]), ack(first[2]))
        await c.quiet()
        await eventually(lambda: all(t.state is SyncState.SYNCED for t in server.status()[0].types.values()))
        # A change to every type is pushed in make-before-break order too.
        set_simple(world, timeout_s=2, addr="127.0.1.2", port=15002)
        server.config_changed()
        pushed = [await c.recv() for _ in range(3)]
        assert [r.type_url for r in pushed] == [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE]
        assert all(p.version_info != f.version_info for p, f in zip(pushed, first, strict=True))
        await c.close()

    run(with_server(body, world))


def test_nack_is_recorded_not_repushed_and_next_change_pushes() -> None:
    world = simple_world()
    events: list[AckEvent] = []

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        got = await sync(c)
        set_simple(world, port=15009)  # a listener change Envoy will "reject"
        server.config_changed()
        bad = await c.recv()
        assert bad.type_url == LISTENER_TYPE
        c.send(nack(bad, "bind: address in use", version=got[LISTENER_TYPE].version_info))
        await c.quiet()  # never re-sent while the content is the same
        server.config_changed()  # nothing changed: still no re-push of the rejected content
        await c.quiet()
        lds = server.status()[0].types[LISTENER_TYPE]
        assert lds.state is SyncState.ERROR
        assert lds.acked_version == got[LISTENER_TYPE].version_info
        assert lds.last_nack is not None
        assert lds.last_nack.message == "bind: address in use"
        assert lds.last_nack.version == bad.version_info
        assert events[-1].error == "bind: address in use"
        assert events[-1].type_url == LISTENER_TYPE
        assert events[-1].node_id == NODE.id
        # A real change is pushed again.
        set_simple(world, port=15010)
        server.config_changed()
        fixed = await c.recv()
        assert fixed.type_url == LISTENER_TYPE
        assert fixed.version_info not in (bad.version_info, got[LISTENER_TYPE].version_info)
        c.send(ack(fixed))
        await eventually(lambda: server.status()[0].types[LISTENER_TYPE].state is SyncState.SYNCED)
        assert events[-1].error is None
        assert events[-1].version == fixed.version_info
        assert events[-1].convergence_s is not None
        await c.close()

    run(with_server(body, world, on_ack=events.append))


def test_stale_nonce_is_ignored() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        await sync(c)
        set_simple(world, port=15002)
        server.config_changed()
        first = await c.recv()
        set_simple(world, port=15003)
        server.config_changed()
        second = await c.recv()
        assert first.type_url == second.type_url == LISTENER_TYPE
        c.send(ack(first))  # answers a superseded response
        await c.quiet()
        assert server.status()[0].types[LISTENER_TYPE].state is SyncState.STALE
        # Even a subscription change carried by a stale nonce is ignored in SotW.
        c.send(request(ENDPOINT_TYPE, ["a-c1", "other"], nonce="not-a-nonce-of-ours"))
        await c.quiet()
        c.send(ack(second))
        await eventually(lambda: server.status()[0].types[LISTENER_TYPE].state is SyncState.SYNCED)
        await c.close()

    run(with_server(body, world, flow_timeout=None))


def test_reconnect_with_current_versions_gets_no_repush() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        got = await sync(c)
        await c.close()
        # Also across a restart of the server: versions are content hashes.
        server2 = GeneratingServer(world.generate)
        port2 = await server2.start()
        try:
            for p in (port, port2):
                c = AdsClient(p)
                c.send(request(CLUSTER_TYPE, n=NODE, version=got[CLUSTER_TYPE].version_info))
                c.send(request(LISTENER_TYPE, version=got[LISTENER_TYPE].version_info))
                await c.quiet()
                await c.close()
            # An outdated client is brought up to date.
            c = AdsClient(port2)
            c.send(request(CLUSTER_TYPE, n=NODE, version="outdated"))
            assert (await c.recv()).version_info == got[CLUSTER_TYPE].version_info
            await c.close()
        finally:
            await server2.stop(0)

    run(with_server(body, world))


def test_nodes_with_different_labels_get_different_resources() -> None:
    world = simple_world("a")
    set_simple(world, "b", port=16001)

    async def body(server: GeneratingServer, port: int) -> None:
        ca, cb = AdsClient(port), AdsClient(port)
        na, nb = node("sidecar~127.0.1.1~a", app="a"), node("sidecar~127.0.1.2~b", app="b")
        ga = await sync(ca, n=na)
        gb = await sync(cb, n=nb, eds=("b-c1",))
        assert names_in(ga[LISTENER_TYPE]) == ["a-l1"]
        assert names_in(gb[LISTENER_TYPE]) == ["b-l1"]
        assert ga[LISTENER_TYPE].version_info != gb[LISTENER_TYPE].version_info
        assert set(server.resources(na.id)[CLUSTER_TYPE]) == {"a-c1"}
        assert set(server.resources(nb.id)[CLUSTER_TYPE]) == {"b-c1"}
        assert server.resources("nobody") == {}
        assert sorted(s.node_id for s in server.status()) == sorted([na.id, nb.id])
        # A change for b's app reaches b only.
        set_simple(world, "b", port=16002)
        server.config_changed()
        assert (await cb.recv()).type_url == LISTENER_TYPE
        await ca.quiet()
        await ca.close()
        await cb.close()
        await eventually(lambda: server.status() == [])

    run(with_server(body, world))


def test_config_changed_pushes_only_changed_types() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        got = await sync(c)
        calls = world.calls
        server.config_changed()  # nothing changed
        await c.quiet()
        assert world.calls == calls + 1  # regenerated once for the one node group
        world.apps["a"][ENDPOINT_TYPE] = [cla("a-c1", "127.0.1.1", "127.0.1.7")]
        server.config_changed()
        eds = await c.recv()
        assert eds.type_url == ENDPOINT_TYPE
        assert eds.version_info != got[ENDPOINT_TYPE].version_info
        c.send(ack(eds, ["a-c1"]))
        await c.quiet()
        await c.close()

    run(with_server(body, world))


def test_eds_is_resent_after_a_cds_change() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        got = await sync(c)
        world.apps["a"][CLUSTER_TYPE] = [cluster("a-c1", timeout_s=5)]  # endpoints unchanged
        server.config_changed()
        cds = await c.recv()
        eds = await c.recv()
        assert (cds.type_url, eds.type_url) == (CLUSTER_TYPE, ENDPOINT_TYPE)
        assert eds.version_info == got[ENDPOINT_TYPE].version_info
        assert eds.nonce != got[ENDPOINT_TYPE].nonce
        assert names_in(eds) == ["a-c1"]
        c.send(ack(cds), ack(eds, ["a-c1"]))
        await c.quiet()
        await c.close()

    run(with_server(body, world))


def test_requested_missing_eds_name_is_sent_when_it_appears() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        got = await sync(c, eds=("a-c1", "a-c2"))
        assert names_in(got[ENDPOINT_TYPE]) == ["a-c1"]
        world.apps["a"][ENDPOINT_TYPE].append(cla("a-c2", "127.0.1.9"))
        server.config_changed()
        eds = await c.recv()
        assert eds.type_url == ENDPOINT_TYPE
        assert names_in(eds) == ["a-c1", "a-c2"]
        await c.close()

    run(with_server(body, world))


def test_newly_subscribed_name_is_sent_even_if_unchanged() -> None:
    world = simple_world()
    world.apps["a"][ENDPOINT_TYPE].append(cla("a-c2", "127.0.1.9"))

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        got = await sync(c, eds=("a-c1", "a-c2"))
        c.send(ack(got[ENDPOINT_TYPE], ["a-c1"]))  # unsubscribe a-c2: nothing to send in SotW
        await c.quiet()
        eds1 = got[ENDPOINT_TYPE]
        c.send(request(ENDPOINT_TYPE, ["a-c1", "a-c2"], version=eds1.version_info, nonce=eds1.nonce))
        again = await c.recv()
        assert names_in(again) == ["a-c1", "a-c2"]
        await c.close()

    run(with_server(body, world))


def test_empty_type_url_is_ignored_and_stream_survives() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        c.send(request("", n=NODE))
        await c.quiet()
        c.send(request(LISTENER_TYPE))
        assert (await c.recv()).type_url == LISTENER_TYPE
        await c.close()

    run(with_server(body, world))


def test_config_changed_from_another_thread() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        await sync(c)
        world.apps["a"][LISTENER_TYPE] = [listener("a-l1", 15077, "a-c1")]
        t = threading.Thread(target=server.config_changed)
        t.start()
        t.join(timeout=5)
        assert (await c.recv()).type_url == LISTENER_TYPE
        await c.close()

    run(with_server(body, world))


def test_generator_failure_keeps_last_good_config() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        await sync(c)
        world.apps["a"][LISTENER_TYPE] = ["not a message"]  # type: ignore[list-item]
        server.config_changed()
        await c.quiet()
        assert set(server.resources(NODE.id)[LISTENER_TYPE]) == {"a-l1"}
        await c.close()

    run(with_server(body, world))


def test_shares_a_caller_owned_server_with_health() -> None:
    world = simple_world()

    async def body() -> None:
        grpc_server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), grpc_server)
        server = GeneratingServer(world.generate)
        port = await server.start("127.0.0.1:0", server=grpc_server)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            c = AdsClient(port)
            await sync(c)
            await c.close()
        finally:
            await server.stop(0)

    run(body())


def test_identical_nodes_share_one_generation() -> None:
    world = World()
    set_simple(world)

    async def body(server: GeneratingServer, port: int) -> None:
        clients = [AdsClient(port) for _ in range(3)]
        for c in clients:
            await sync(c, n=node("same-id", app="a"))
        server.config_changed()
        calls = world.calls
        server.config_changed()
        assert world.calls == calls + 1
        for c in clients:
            await c.close()

    run(with_server(body, world))


def test_reconnect_reuses_the_group_snapshot_until_the_config_changes() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port)
        got = await sync(c)
        await c.close()
        await eventually(lambda: not server.status())
        calls = world.calls
        c = AdsClient(port)
        again = await sync(c)
        assert world.calls == calls  # the closed group's snapshot was kept: nothing generated again
        assert again[LISTENER_TYPE].version_info == got[LISTENER_TYPE].version_info
        await c.close()
        await eventually(lambda: not server.status())
        server.config_changed()  # a change republishes every group the server keeps, idle ones too
        c = AdsClient(port)
        await sync(c)
        assert world.calls == calls + 1
        await c.close()

    run(with_server(body, world, flow_timeout=None))
