"""Unit tests of the sans-I/O SotW stream state machine (no grpc)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpmesh.xds.cache import Snapshot, SnapshotCache, content_version, resource_version
from tcpmesh.xds.sotw import SotwStream
from tcpmesh.xds.status import AckEvent, SyncState
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, push_rank
from tests.xds.ads_testkit import ack, cla, cluster, listener, nack, names_in, node, request

CACHE = SnapshotCache()
N = node(app="a")


def snap(clusters: int = 1, endpoints: tuple[str, ...] = ("c0",), listeners: int = 1, timeout: int = 1) -> Snapshot:
    return CACHE.build(
        {
            CLUSTER_TYPE: [cluster(f"c{i}", timeout_s=timeout) for i in range(clusters)],
            ENDPOINT_TYPE: [cla(name, "127.0.1.1") for name in endpoints],
            LISTENER_TYPE: [listener(f"l{i}", 15000 + i, "c0") for i in range(listeners)],
        }
    )


def stream(snapshot: Snapshot | None = None, **kw: Any) -> SotwStream:
    s = SotwStream(nonce_prefix="n", **kw)
    if snapshot is not None:
        assert s.on_resources_changed(snapshot) == []  # nothing requested yet
    return s


def one(responses: list[Any]) -> Any:
    assert len(responses) == 1, [r.type_url for r in responses]
    return responses[0]


def test_requests_before_the_snapshot_are_answered_when_it_arrives_in_order() -> None:
    s = stream()
    assert s.on_request(request(LISTENER_TYPE, n=N)) == []
    assert s.on_request(request(ENDPOINT_TYPE, ["c0"])) == []
    assert s.on_request(request(CLUSTER_TYPE)) == []
    out = s.on_resources_changed(snap())
    assert [r.type_url for r in out] == [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE]
    assert s.node == N


def test_version_is_content_hash_and_nonce_fresh() -> None:
    s = stream(snap(clusters=2))
    r = one(s.on_request(request(CLUSTER_TYPE, n=N)))
    ts = snap(clusters=2)[CLUSTER_TYPE]
    assert r.version_info == ts.version == content_version(ts.versions().items())
    assert names_in(r) == ["c0", "c1"]
    assert [a.value for a in r.resources] == [e.data for e in ts.entries.values()]
    r2 = one(s.on_resources_changed(snap(clusters=3)))
    assert r2.nonce != r.nonce
    assert names_in(r2) == ["c0", "c1", "c2"]


def test_full_state_types_push_removals_eds_does_not() -> None:
    s = stream(snap(clusters=2, endpoints=("c0", "c1")))
    one(s.on_request(request(CLUSTER_TYPE, n=N)))
    eds = one(s.on_request(request(ENDPOINT_TYPE, ["c0", "c1"])))
    assert names_in(eds) == ["c0", "c1"]
    # Cluster c1 and its endpoints go: CDS (full state) is pushed, then EDS because of CDS.
    out = s.on_resources_changed(snap(clusters=1, endpoints=("c0",)))
    assert [(r.type_url, names_in(r)) for r in out] == [(CLUSTER_TYPE, ["c0"]), (ENDPOINT_TYPE, ["c0"])]
    # Only an EDS resource going away: no SotW push (there is no delete for EDS).
    s2 = stream(snap(endpoints=("c0", "c1")))
    one(s2.on_request(request(ENDPOINT_TYPE, ["c0", "c1"], n=N)))
    assert s2.on_resources_changed(snap(endpoints=("c0",))) == []


def test_sotw_wildcard_four_steps() -> None:
    # xds_protocol.rst: legacy wildcard, then explicit names, then empty = nothing, then "*" again.
    s = stream(snap(clusters=3))
    assert names_in(one(s.on_request(request(CLUSTER_TYPE, n=N)))) == ["c0", "c1", "c2"]
    r = s.type_status()[CLUSTER_TYPE]
    assert r.wildcard
    last = s._types[CLUSTER_TYPE].nonce
    out = s.on_request(request(CLUSTER_TYPE, ["c1"], nonce=last))
    assert names_in(one(out)) == ["c1"]
    out = s.on_request(request(CLUSTER_TYPE, [], nonce=out[0].nonce))
    assert names_in(one(out)) == []  # explicit subscription happened: empty now means nothing
    out = s.on_request(request(CLUSTER_TYPE, ["*", "c1"], nonce=out[0].nonce))
    assert names_in(one(out)) == ["c0", "c1", "c2"]


def test_ack_is_quiet_and_recorded() -> None:
    events: list[AckEvent] = []
    s = stream(snap(), on_ack=events.append, clock=lambda: 10.0)
    r = one(s.on_request(request(LISTENER_TYPE, n=N)))
    assert s.type_status()[LISTENER_TYPE].state is SyncState.STALE
    assert s.on_request(ack(r)) == []
    st_ = s.type_status()[LISTENER_TYPE]
    assert (st_.state, st_.acked_version, st_.nonce) == (SyncState.SYNCED, r.version_info, r.nonce)
    assert [(e.type_url, e.node_id, e.version, e.error) for e in events] == [
        (LISTENER_TYPE, N.id, r.version_info, None)
    ]


def test_nack_keeps_acked_version_and_does_not_loop() -> None:
    s = stream(snap())
    good = one(s.on_request(request(LISTENER_TYPE, n=N)))
    s.on_request(ack(good))
    bad = one(s.on_resources_changed(snap(listeners=2)))
    assert s.on_request(nack(bad, "boom", version=good.version_info)) == []
    st_ = s.type_status()[LISTENER_TYPE]
    assert st_.state is SyncState.ERROR
    assert st_.acked_version == good.version_info
    assert st_.last_nack is not None
    assert (st_.last_nack.message, st_.last_nack.version) == ("boom", bad.version_info)
    assert s.on_resources_changed(snap(listeners=2)) == []  # same rejected content: no re-push
    fixed = one(s.on_resources_changed(snap(listeners=3)))
    s.on_request(ack(fixed))
    assert s.type_status()[LISTENER_TYPE].state is SyncState.SYNCED


def test_stale_nonce_ignored_even_with_new_names() -> None:
    s = stream(snap(endpoints=("c0", "c1")))
    r1 = one(s.on_request(request(ENDPOINT_TYPE, ["c0"], n=N)))
    r2 = one(s.on_request(request(ENDPOINT_TYPE, ["c0", "c1"], nonce=r1.nonce)))
    assert s.on_request(request(ENDPOINT_TYPE, ["c1"], nonce=r1.nonce, error="late")) == []
    assert s.type_status()[ENDPOINT_TYPE].last_nack is None
    assert s.type_status()[ENDPOINT_TYPE].subscribed == {"c0", "c1"}
    assert s.on_request(ack(r2, ["c0", "c1"])) == []


def test_reconnect_with_current_version_adopts_without_sending() -> None:
    first = stream(snap())
    cds = one(first.on_request(request(CLUSTER_TYPE, n=N)))
    s = stream(snap())
    assert s.on_request(request(CLUSTER_TYPE, n=N, version=cds.version_info, nonce="old-stream-7")) == []
    assert s.type_status()[CLUSTER_TYPE].state is SyncState.SYNCED
    # Named (EDS) subscriptions are always answered on a new stream.
    eds = one(s.on_request(request(ENDPOINT_TYPE, ["c0"], version="whatever")))
    assert names_in(eds) == ["c0"]
    # And later changes are pushed as usual.
    out = s.on_resources_changed(snap(clusters=2))
    assert [r.type_url for r in out] == [CLUSTER_TYPE, ENDPOINT_TYPE]


def test_cds_push_forces_eds_with_same_version_new_nonce() -> None:
    s = stream(snap())
    one(s.on_request(request(CLUSTER_TYPE, n=N)))
    eds = one(s.on_request(request(ENDPOINT_TYPE, ["c0"])))
    out = s.on_resources_changed(snap(timeout=9))
    assert [r.type_url for r in out] == [CLUSTER_TYPE, ENDPOINT_TYPE]
    assert out[1].version_info == eds.version_info
    assert out[1].nonce != eds.nonce


def test_missing_named_resource_is_remembered() -> None:
    s = stream(snap(endpoints=()))
    assert s.on_request(request(ENDPOINT_TYPE, ["c0", "zz"], n=N)) == []
    assert names_in(one(s.on_resources_changed(snap(endpoints=("zz",))))) == ["zz"]
    assert names_in(one(s.on_resources_changed(snap(endpoints=("zz", "c0"))))) == ["c0", "zz"]


def test_wildcard_with_no_resources_still_answers() -> None:
    s = stream(CACHE.build({}))
    r = one(s.on_request(request(LISTENER_TYPE, n=N)))
    assert list(r.resources) == []
    assert s.on_request(request(ROUTE_TYPE, ["r1"])) == []  # named and missing: wait for it


def test_empty_type_url_and_missing_node() -> None:
    s = stream(snap())
    assert s.on_request(request("")) == []
    assert s.node is None
    assert s.type_status() == {}


def test_duplicate_generated_names_are_sent_once() -> None:
    s = stream(CACHE.build({CLUSTER_TYPE: [cluster("c0"), cluster("c0", timeout_s=7)]}))
    assert names_in(one(s.on_request(request(CLUSTER_TYPE, n=N)))) == ["c0"]


# ----- property test: random request sequences never break the machine or its invariants

TYPES = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, "", "type.googleapis.com/unknown.Type"]
NAMES = ["c0", "c1", "c2", "zz", "*", "l0"]

requests_st = st.builds(
    lambda t, names, version, nonce_pick, error, with_node: (t, names, version, nonce_pick, error, with_node),
    st.sampled_from(TYPES),
    st.lists(st.sampled_from(NAMES), max_size=4),
    st.sampled_from(["", "x", "stale"]),
    st.sampled_from(["", "latest", "garbage", "previous"]),
    st.one_of(st.none(), st.text(max_size=5)),
    st.booleans(),
)
steps_st = st.lists(
    st.one_of(requests_st, st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 3))), max_size=30
)


@settings(deadline=None)
@given(steps=steps_st, start_with_snapshot=st.booleans())
def test_random_request_sequences_never_raise_and_keep_invariants(
    steps: list[tuple[Any, ...]], start_with_snapshot: bool
) -> None:
    s = SotwStream(nonce_prefix="p")
    if start_with_snapshot:
        s.on_resources_changed(snap())
    nonces: set[str] = set()
    sent: dict[str, str] = {}
    previous: dict[str, str] = {}
    versions: dict[str, str] = {}
    for step in steps:
        if len(step) == 3:
            clusters, listeners, timeout = step
            endpoints = tuple(f"c{i}" for i in range(clusters))
            out = s.on_resources_changed(snap(clusters, endpoints, listeners, timeout))
            ranks = [push_rank(r.type_url) for r in out]
            # Push order holds: EDS may repeat right after CDS, never come before it.
            assert all(a <= b for a, b in itertools.pairwise(ranks))
            for r in out:
                if r.type_url in (CLUSTER_TYPE, LISTENER_TYPE):  # never an identical full-state re-push
                    assert r.version_info != versions.get(r.type_url)
        else:
            t, names, version, nonce_pick, error, with_node = step
            nonce = {"latest": sent.get(t, ""), "previous": previous.get(t, ""), "garbage": "g"}.get(nonce_pick, "")
            out = s.on_request(request(t, names, version=version, nonce=nonce, error=error, n=N if with_node else None))
            if not t:
                assert out == []
        for r in out:
            assert r.type_url
            assert r.nonce not in nonces
            nonces.add(r.nonce)
            ns = names_in(r) if r.type_url in (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE) else []
            assert len(ns) == len(set(ns))
            # version_info is the hash of exactly what the response carries.
            pairs = [(n, resource_version(a.value)) for n, a in zip(ns, r.resources, strict=True)]
            assert r.version_info == content_version(pairs)
            versions[r.type_url] = r.version_info
            previous[r.type_url] = sent.get(r.type_url, "")
            sent[r.type_url] = r.nonce
        for status in s.type_status().values():
            assert status.state in SyncState
