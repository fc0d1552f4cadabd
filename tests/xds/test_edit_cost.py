"""An edit costs what it changed: a patched snapshot re-versions only its changed entries, and a stream in sync
is staged (make-before-break) without looking at every listener."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from google.protobuf.message import Message

from tcpmesh.xds.cache import SnapshotCache, content_version
from tcpmesh.xds.delta import DeltaStream
from tcpmesh.xds.ordering import Held, stage
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from tests.xds.ads_testkit import cla, cluster, listener

N = 2_000


def world(n: int, port_of_changed: int = 0) -> dict[str, list[Message]]:
    return {
        CLUSTER_TYPE: [cluster(f"c{i}") for i in range(n)],
        ENDPOINT_TYPE: [cla(f"c{i}", "127.0.0.1") for i in range(n)],
        LISTENER_TYPE: [listener(f"l{i}", 10_000 + i + (port_of_changed if i == 7 else 0), f"c{i}") for i in range(n)],
    }


def serialized(resources: dict[str, list[Message]]) -> dict[str, list[tuple[str, Message, bytes]]]:
    def name(m: Message) -> str:
        return str(getattr(m, "cluster_name", "") or getattr(m, "name"))  # noqa: B009

    return {t: [(name(m), m, m.SerializeToString(deterministic=True)) for m in ms] for t, ms in resources.items()}


def test_a_patch_equals_a_build_of_the_whole() -> None:
    cache = SnapshotCache()
    before = cache.build_serialized(serialized(world(N)))
    after_world = serialized(world(N, port_of_changed=1))
    changed = [item for item in after_world[LISTENER_TYPE] if item[0] == "l7"]
    added = [("c-new", cluster("c-new"), cluster("c-new").SerializeToString(deterministic=True))]
    patched = cache.patch(before, {LISTENER_TYPE: (changed, ()), CLUSTER_TYPE: (added, ["c3"])})
    after_world[CLUSTER_TYPE] = [i for i in after_world[CLUSTER_TYPE] if i[0] != "c3"] + added
    whole = SnapshotCache().build_serialized(after_world)
    for type_url in (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE):
        mine, theirs = patched.get_type(type_url), whole.get_type(type_url)
        assert mine.version == theirs.version == content_version(theirs.versions().items())
        assert list(mine.entries) == list(theirs.entries)  # name order, as a whole build gives
    assert patched.get_type(ENDPOINT_TYPE) is before.get_type(ENDPOINT_TYPE)  # untouched: the same value
    assert cache.patch(patched, {LISTENER_TYPE: (changed, ())}) is patched  # same bytes: nothing new


class _Counted(Mapping[str, frozenset[str]]):
    """One listener's references, counting how often staging reads them."""

    reads = 0

    def __init__(self, clusters: frozenset[str]) -> None:
        self._refs = {CLUSTER_TYPE: clusters}

    def __getitem__(self, type_url: str) -> frozenset[str]:
        _Counted.reads += 1
        return self._refs[type_url]

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)


def test_a_stream_in_sync_is_staged_without_reading_its_listeners() -> None:
    resources = world(N)
    counted = {LISTENER_TYPE: {f"l{i}": _Counted(frozenset({f"c{i}"})) for i in range(N)}}
    snapshot = SnapshotCache().build(resources, counted)
    _Counted.reads = 0
    synced = {t: Held(acked=snapshot.get_type(t).entries) for t in snapshot}
    staged = stage(snapshot, synced)
    assert _Counted.reads == 0
    assert staged.waiting_for == frozenset()
    assert not any(staged.types.values())
    # A proxy that has not ACKed the clusters yet: listeners wait, which needs their references.
    fresh = {LISTENER_TYPE: Held()}
    staged = stage(snapshot, fresh)
    assert staged.types[LISTENER_TYPE] is None
    assert len(staged.waiting_for) == N
    assert _Counted.reads == N


def test_a_delta_stream_in_sync_is_sent_exactly_what_a_patch_changed() -> None:
    from tests.xds.test_xds_delta import dreq

    cache = SnapshotCache()
    before = cache.build_serialized(serialized(world(50)))
    after_world = serialized(world(50, port_of_changed=1))
    changed = [item for item in after_world[LISTENER_TYPE] if item[0] == "l7"]
    patched = cache.patch(before, {LISTENER_TYPE: (changed, ["l9"])})
    assert patched.get_type(LISTENER_TYPE).base is before.get_type(LISTENER_TYPE).entries

    def synced_stream() -> DeltaStream:
        stream = DeltaStream()
        stream.on_resources_changed(before)
        first = stream.on_request(dreq(LISTENER_TYPE, with_node=True))
        stream.on_request(dreq(LISTENER_TYPE, nonce=first[0].nonce))
        return stream

    fast = synced_stream().on_resources_changed(patched)
    # The same change reached by comparing every entry (a snapshot built whole, no lineage).
    whole_world = {**after_world, LISTENER_TYPE: [i for i in after_world[LISTENER_TYPE] if i[0] != "l9"]}
    slow = synced_stream().on_resources_changed(SnapshotCache().build_serialized(whole_world))
    assert [(e.name, e.version) for e in fast[0].updates] == [(e.name, e.version) for e in slow[0].updates]
    assert [e.name for e in fast[0].updates] == ["l7"]
    assert fast[0].removed == slow[0].removed == ("l9",)
