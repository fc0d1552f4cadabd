"""Delta (incremental) ADS: the sans-I/O state machine, a property test, and one run over grpc."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpmesh.xds.cache import Snapshot, SnapshotCache
from tcpmesh.xds.delta import DeltaStream
from tcpmesh.xds.status import SyncState
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, push_rank
from tests.xds.ads_testkit import (
    AdsClient,
    GeneratingServer,
    cla,
    cluster,
    listener,
    node,
    run,
    simple_world,
    with_server,
)

CACHE = SnapshotCache()
N = node(app="a")


def snap(clusters: Sequence[str] = ("c0",), endpoints: Sequence[str] = ("c0",), timeout: int = 1) -> Snapshot:
    return CACHE.build(
        {
            CLUSTER_TYPE: [cluster(c, timeout_s=timeout) for c in clusters],
            ENDPOINT_TYPE: [cla(e, "127.0.1.1") for e in endpoints],
            LISTENER_TYPE: [listener("l0", 15000, "c0")],
        }
    )


def dreq(
    type_url: str,
    subscribe: Sequence[str] = (),
    unsubscribe: Sequence[str] = (),
    *,
    nonce: str = "",
    error: str | None = None,
    initial: Mapping[str, str] | None = None,
    with_node: bool = False,
) -> Any:
    r = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=list(subscribe),
        resource_names_unsubscribe=list(unsubscribe),
        response_nonce=nonce,
        initial_resource_versions=dict(initial or {}),
    )
    if with_node:
        r.node.CopyFrom(N.to_proto())
    if error is not None:
        r.error_detail.message = error
    return r


def one(out: list[Any]) -> Any:
    assert len(out) == 1, [r.type_url for r in out]
    return out[0]


def updated(r: Any) -> dict[str, str]:
    return {x.name: x.version for x in r.resources}


def test_wildcard_sends_all_then_only_changes_and_removals() -> None:
    s = DeltaStream(nonce_prefix="d")
    s.on_resources_changed(snap(clusters=("c0", "c1")))
    r = one(s.on_request(dreq(CLUSTER_TYPE, with_node=True)))
    assert set(updated(r)) == {"c0", "c1"}
    assert updated(r)["c0"] == snap(clusters=("c0", "c1"))[CLUSTER_TYPE].entries["c0"].version
    assert s.on_request(dreq(CLUSTER_TYPE, nonce=r.nonce)) == []  # ACK
    assert s.type_status()[CLUSTER_TYPE].state is SyncState.SYNCED
    r = one(s.on_resources_changed(snap(clusters=("c0", "c2"))))
    assert set(updated(r)) == {"c2"}
    assert list(r.removed_resources) == ["c1"]
    assert s.on_resources_changed(snap(clusters=("c0", "c2"))) == []


def test_named_subscription_missing_then_appearing_and_resubscribe() -> None:
    s = DeltaStream(nonce_prefix="d")
    s.on_resources_changed(snap(endpoints=("c0",)))
    r = one(s.on_request(dreq(ENDPOINT_TYPE, ["c0", "zz"], with_node=True)))
    assert set(updated(r)) == {"c0"}
    assert list(r.removed_resources) == ["zz"]  # tells the client it does not exist
    r = one(s.on_resources_changed(snap(endpoints=("c0", "zz"))))
    assert set(updated(r)) == {"zz"}
    # Subscribing again to something the client has: still sent.
    r = one(s.on_request(dreq(ENDPOINT_TYPE, ["c0"], nonce=r.nonce)))
    assert set(updated(r)) == {"c0"}
    # Unsubscribe without wildcard: no response; later changes to it are not sent.
    assert s.on_request(dreq(ENDPOINT_TYPE, [], ["c0"], nonce=r.nonce)) == []
    assert s.on_request(dreq(ENDPOINT_TYPE, [], ["never-subscribed"])) == []
    assert s.on_resources_changed(snap(endpoints=("zz",))) == []


def test_reconnect_initial_versions_skip_unchanged_send_changed_remove_deleted() -> None:
    have = snap(clusters=("c0", "c1", "old"))[CLUSTER_TYPE].versions()
    have["c1"] = "outdated"
    s = DeltaStream(nonce_prefix="d")
    s.on_resources_changed(snap(clusters=("c0", "c1", "c2")))
    r = one(s.on_request(dreq(CLUSTER_TYPE, ["*"], initial=have, with_node=True)))
    assert set(updated(r)) == {"c1", "c2"}
    assert list(r.removed_resources) == ["old"]


def test_wildcard_plus_name_unsubscribe_resends_it() -> None:
    s = DeltaStream(nonce_prefix="d")
    s.on_resources_changed(snap(clusters=("c0", "c1")))
    r = one(s.on_request(dreq(CLUSTER_TYPE, ["*", "c1"], with_node=True)))
    r = one(s.on_request(dreq(CLUSTER_TYPE, [], ["c1"], nonce=r.nonce)))
    assert set(updated(r)) == {"c1"}
    assert list(r.removed_resources) == []


def test_stale_nonce_still_changes_subscription_and_nack_is_recorded() -> None:
    s = DeltaStream(nonce_prefix="d")
    s.on_resources_changed(snap(endpoints=("c0", "c1")))
    r = one(s.on_request(dreq(ENDPOINT_TYPE, ["c0"], with_node=True)))
    r2 = one(s.on_request(dreq(ENDPOINT_TYPE, ["c1"], nonce="stale")))
    assert set(updated(r2)) == {"c1"}
    assert s.on_request(dreq(ENDPOINT_TYPE, nonce=r2.nonce, error="bad endpoint")) == []
    status = s.type_status()[ENDPOINT_TYPE]
    assert status.state is SyncState.ERROR
    assert status.last_nack is not None
    assert status.last_nack.message == "bad endpoint"
    assert r.nonce != r2.nonce
    assert s.on_resources_changed(snap(endpoints=("c0", "c1"))) == []  # no NACK loop


def test_cluster_update_forces_endpoints_in_order() -> None:
    s = DeltaStream(nonce_prefix="d")
    s.on_resources_changed(snap())
    one(s.on_request(dreq(CLUSTER_TYPE, with_node=True)))
    one(s.on_request(dreq(ENDPOINT_TYPE, ["c0"])))
    out = s.on_resources_changed(snap(timeout=5))
    assert [r.type_url for r in out] == [CLUSTER_TYPE, ENDPOINT_TYPE]
    assert set(updated(out[1])) == {"c0"}


def test_empty_wildcard_answers_once() -> None:
    s = DeltaStream(nonce_prefix="d")
    s.on_resources_changed(CACHE.build({}))
    r = one(s.on_request(dreq(LISTENER_TYPE, with_node=True)))
    assert list(r.resources) == []
    assert s.on_request(dreq(LISTENER_TYPE, nonce=r.nonce)) == []
    assert s.on_request(dreq("")) == []


NAMES = ["c0", "c1", "c2", "*", "zz"]


@settings(deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(
                st.sampled_from([CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ""]),
                st.lists(st.sampled_from(NAMES), max_size=3),
                st.lists(st.sampled_from(NAMES), max_size=3),
                st.sampled_from(["", "latest", "junk"]),
                st.one_of(st.none(), st.just("err")),
                st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["v", ""]), max_size=2),
            ),
            st.tuples(st.lists(st.sampled_from(["c0", "c1", "c2"]), max_size=3, unique=True)),
        ),
        max_size=25,
    )
)
def test_random_delta_sequences_never_raise(steps: list[tuple[Any, ...]]) -> None:
    s = DeltaStream(nonce_prefix="p")
    latest: dict[str, str] = {}
    for step in steps:
        if len(step) == 1:
            out = s.on_resources_changed(snap(clusters=step[0], endpoints=step[0]))
            ranks = [push_rank(r.type_url) for r in out]
            assert ranks == sorted(ranks)
        else:
            t, sub, unsub, nonce_pick, error, initial = step
            nonce = latest.get(t, "") if nonce_pick == "latest" else nonce_pick
            out = s.on_request(dreq(t, sub, unsub, nonce=nonce, error=error, initial=initial, with_node=True))
        for r in out:
            names = [x.name for x in r.resources]
            assert len(names) == len(set(names))
            assert not set(names) & set(r.removed_resources)
            latest[r.type_url] = r.nonce
        # Once a snapshot is there, what the client holds (as far as we know) is exactly the current content.
        if s.snapshot is not None:
            for t, known in s.known_resources().items():
                entries = s.snapshot.get_type(t).entries
                assert all(n in entries and entries[n].version == v for n, v in known.items())


def test_delta_over_grpc() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = AdsClient(port, delta=True)
        c.send(dreq(CLUSTER_TYPE, with_node=True))
        r = await c.recv()
        assert r.type_url == CLUSTER_TYPE
        assert [x.name for x in r.resources] == ["a-c1"]
        c.send(dreq(CLUSTER_TYPE, nonce=r.nonce))
        await c.quiet()
        world.apps["a"][CLUSTER_TYPE] = [cluster("a-c2")]
        server.config_changed()
        r = await c.recv()
        assert [x.name for x in r.resources] == ["a-c2"]
        assert list(r.removed_resources) == ["a-c1"]
        c.send(dreq(CLUSTER_TYPE, nonce=r.nonce))
        await c.quiet()
        (status,) = server.status()
        assert status.protocol == "delta"
        assert status.types[CLUSTER_TYPE].state is SyncState.SYNCED
        await c.close()

    run(with_server(body, world))
