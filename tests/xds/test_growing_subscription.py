"""A subscription that grows one name per request (Envoy asks for one more filter config per listener it builds:
10 000 requests at 10 000 services) is answered with the names it gained, derived from the last subscription's
set instead of rebuilt: linear in the names, not quadratic (bench/convergence.py measures it end to end)."""

from __future__ import annotations

import time
from typing import Any

from envoy.config.core.v3 import extension_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from tcpmesh.xds.cache import Snapshot, SnapshotCache
from tcpmesh.xds.delta import DeltaStream
from tcpmesh.xds.payload import SotwResponse
from tcpmesh.xds.server import _Connection
from tcpmesh.xds.sotw import SotwStream
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE
from tests.xds.ads_testkit import cla, cluster, listener, node, request
from tests.xds.test_xds_delta import dreq

N = 120
NAMES = [f"s{i}" for i in range(N)]


def world(cache: SnapshotCache | None = None, *, tag: str = "") -> Snapshot:
    """N services, each a cluster with endpoints, a listener and the filter config (ECDS) the listener names."""
    configs = []
    for name in NAMES:
        config = extension_pb2.TypedExtensionConfig(name=f"f-{name}")
        config.typed_config.Pack(tcp_proxy_pb2.TcpProxy(stat_prefix=name + tag, cluster=name))
        configs.append(config)
    references = {
        LISTENER_TYPE: {
            f"l-{n}": {CLUSTER_TYPE: frozenset([n]), EXTENSION_CONFIG_TYPE: frozenset([f"f-{n}"])} for n in NAMES
        },
        EXTENSION_CONFIG_TYPE: {f"f-{n}": {CLUSTER_TYPE: frozenset([n])} for n in NAMES},
    }
    return (cache or SnapshotCache()).build(
        {
            CLUSTER_TYPE: [cluster(n) for n in NAMES],
            ENDPOINT_TYPE: [cla(n, "127.0.0.1") for n in NAMES],
            LISTENER_TYPE: [listener(f"l-{n}", 10_000 + i, n) for i, n in enumerate(NAMES)],
            EXTENSION_CONFIG_TYPE: configs,
        },
        references,
    )


def edited(name: str, cluster: str) -> tuple[str, Any, bytes]:
    """A filter config `name` put by a patch (name, message, bytes), routing to `cluster`."""
    config = extension_pb2.TypedExtensionConfig(name=name)
    config.typed_config.Pack(tcp_proxy_pb2.TcpProxy(stat_prefix="edited", cluster=cluster))
    return name, config, config.SerializeToString(deterministic=True)


def names_of(response: Any) -> list[str]:
    if isinstance(response, SotwResponse):
        return [e.name for e in response.body.entries]
    return [e.name for e in response.updates]


def synced_delta(snapshot: Snapshot) -> DeltaStream:
    stream = DeltaStream(make_before_break=True)
    stream.on_resources_changed(snapshot)
    out = stream.on_request(dreq(CLUSTER_TYPE, with_node=True))
    out += stream.on_request(dreq(ENDPOINT_TYPE, NAMES))
    out += stream.on_request(dreq(LISTENER_TYPE))
    for _ in range(4):  # ACK until nothing more comes (make-before-break sends listeners after clusters)
        out = [r for response in out for r in stream.on_request(dreq(response.type_url, nonce=response.nonce))]
    assert not out
    return stream


def test_delta_a_subscription_growing_by_one_name_is_sent_that_name_and_derives_its_set() -> None:
    snapshot = world()
    ts = snapshot.get_type(EXTENSION_CONFIG_TYPE)
    stream = synced_delta(snapshot)
    previous = None
    for i, name in enumerate(NAMES):
        (response,) = stream.on_request(dreq(EXTENSION_CONFIG_TYPE, [f"f-{name}"]))
        assert names_of(response) == [f"f-{name}"]
        assert not response.removed
        if i % 3 == 0:  # ACKs interleave with new subscriptions, as Envoy's do
            assert stream.on_request(dreq(EXTENSION_CONFIG_TYPE, nonce=response.nonce)) == []
        subset = ts.subset_of(stream.type_status()[EXTENSION_CONFIG_TYPE].subscribed)
        if i >= 4:  # small sets are built whole; after that, each is derived from the one before
            assert subset.base is previous
            assert subset.added == (f"f-{name}",)
        previous = subset.entries
    # The client now holds every filter config, as one request naming them all would have left it.
    assert stream.known_resources()[EXTENSION_CONFIG_TYPE] == ts.versions()
    assert list(stream.known_resources()[EXTENSION_CONFIG_TYPE]) != []
    # Unsubscribing and subscribing again sends it again; both in one request leaves it unsubscribed.
    assert stream.on_request(dreq(EXTENSION_CONFIG_TYPE, unsubscribe=["f-s3"])) == []
    (again,) = stream.on_request(dreq(EXTENSION_CONFIG_TYPE, ["f-s3"]))
    assert names_of(again) == ["f-s3"]
    assert stream.on_request(dreq(EXTENSION_CONFIG_TYPE, ["f-s4"], unsubscribe=["f-s4"])) == []
    assert "f-s4" not in stream.type_status()[EXTENSION_CONFIG_TYPE].subscribed
    assert "f-s4" not in stream.known_resources()[EXTENSION_CONFIG_TYPE]


def synced_sotw(snapshot: Snapshot) -> tuple[SotwStream, dict[str, Any]]:
    stream = SotwStream(make_before_break=True)
    stream.on_resources_changed(snapshot)
    last: dict[str, Any] = {}
    out = stream.on_request(request(CLUSTER_TYPE, n=node()))
    out += stream.on_request(request(ENDPOINT_TYPE, NAMES))
    out += stream.on_request(request(LISTENER_TYPE))
    for _ in range(4):
        for response in out:
            last[response.type_url] = response
        out = [
            r
            for response in out
            for r in stream.on_request(
                request(
                    response.type_url,
                    NAMES if response.type_url == ENDPOINT_TYPE else (),
                    version=response.version_info,
                    nonce=response.nonce,
                )
            )
        ]
    assert not out
    return stream, last


def test_sotw_a_subscription_growing_by_one_name_is_sent_that_name_only() -> None:
    snapshot = world()
    ts = snapshot.get_type(EXTENSION_CONFIG_TYPE)
    stream, _ = synced_sotw(snapshot)
    subscribed: list[str] = []
    held: dict[str, str] = {}  # what the client holds, applying each response as Envoy does for ECDS
    nonce = ""
    for name in NAMES:
        subscribed.append(f"f-{name}")
        (response,) = stream.on_request(request(EXTENSION_CONFIG_TYPE, subscribed, nonce=nonce))
        sent = names_of(response)
        assert sent == [f"f-{name}"] or len(subscribed) <= 4  # small sets: built whole
        held.update({e.name: e.version for e in response.body.entries})
        nonce = response.nonce
    assert held == ts.versions()
    assert stream.sent_resources()[EXTENSION_CONFIG_TYPE] == ts.versions()
    # Status counts what the proxy holds after the response, as for a complete one, not the names it carried.
    assert stream.type_status()[EXTENSION_CONFIG_TYPE].sent_count == N
    # A new snapshot that changes them all is one complete response, not a difference.
    (changed,) = stream.on_resources_changed(world(tag="-v2"))
    assert changed.type_url == EXTENSION_CONFIG_TYPE
    assert changed.complete
    assert sorted(names_of(changed)) == sorted(subscribed)


def test_sotw_listeners_and_clusters_stay_complete_and_eds_after_cds_is_complete() -> None:
    snapshot = world()
    # Subscribe EDS names one at a time on a fresh stream: each response adds one (EDS is not a full-state type).
    fresh = SotwStream()
    fresh.on_resources_changed(snapshot)
    (cds,) = fresh.on_request(request(CLUSTER_TYPE, n=node()))
    assert len(names_of(cds)) == N
    eds: list[str] = []
    sizes = []
    nonce = ""
    for name in NAMES[:10]:
        eds.append(name)
        (response,) = fresh.on_request(request(ENDPOINT_TYPE, eds, nonce=nonce))
        sizes.append(len(names_of(response)))
        nonce = response.nonce
    assert sizes[4:] == [1] * 6
    # A cluster push is followed by every subscribed ClusterLoadAssignment: warming needs them all.
    bigger = SnapshotCache().build(
        {CLUSTER_TYPE: [cluster(n, timeout_s=2) for n in NAMES], ENDPOINT_TYPE: [cla(n, "127.0.0.1") for n in NAMES]}
    )
    pushed = fresh.on_resources_changed(bigger)
    assert [r.type_url for r in pushed] == [CLUSTER_TYPE, ENDPOINT_TYPE]
    assert len(names_of(pushed[0])) == N
    assert names_of(pushed[1]) == eds
    assert pushed[1].complete


def _conn() -> _Connection:
    return _Connection(1, "sotw", SotwStream(), time.time())


def test_an_unsent_partial_push_is_merged_never_dropped() -> None:
    snapshot = world()
    stream, _ = synced_sotw(snapshot)
    names: list[str] = []
    responses = []
    nonce = ""
    for name in NAMES[:8]:
        names.append(f"f-{name}")
        (response,) = stream.on_request(request(EXTENSION_CONFIG_TYPE, names, nonce=nonce))
        responses.append(response)
        nonce = response.nonce
    c = _conn()
    for response in responses:  # the writer is behind: all of them queue
        c.put(response)
    (merged,) = c.pending
    assert names_of(merged) == names  # every name once, under the newest version and nonce
    assert merged.nonce == responses[-1].nonce
    assert merged.version_info == responses[-1].version_info
    assert merged.complete  # the first one carried the whole (small) set, so the merge does too
    assert merged.message.resources[0].type_url == EXTENSION_CONFIG_TYPE
    # Partial after partial stays partial; a complete response replaces whatever waits.
    c = _conn()
    c.put(responses[6])
    c.put(responses[7])
    (both,) = c.pending
    assert names_of(both) == names[6:8]
    assert not both.complete
    c.put(responses[0])
    assert list(c.pending) == [responses[0]]


def test_sotw_an_edit_of_one_filter_config_sends_that_one_and_a_removal_sends_all() -> None:
    cache = SnapshotCache()
    snapshot = world(cache)
    stream, _ = synced_sotw(snapshot)
    names = [f"f-{n}" for n in NAMES]
    (first,) = stream.on_request(request(EXTENSION_CONFIG_TYPE, names))
    stream.on_request(request(EXTENSION_CONFIG_TYPE, names, version=first.version_info, nonce=first.nonce))
    put = [edited("f-s7", "s7")]
    refs = {EXTENSION_CONFIG_TYPE: {"f-s7": {CLUSTER_TYPE: frozenset(["s7"])}}}
    patched = cache.patch(snapshot, {EXTENSION_CONFIG_TYPE: (put, ())}, refs)
    (one,) = stream.on_resources_changed(patched)
    assert names_of(one) == ["f-s7"]
    assert not one.complete
    assert one.version_info == patched.get_type(EXTENSION_CONFIG_TYPE).version
    assert stream.sent_resources()[EXTENSION_CONFIG_TYPE] == patched.get_type(EXTENSION_CONFIG_TYPE).versions()
    stream.on_request(request(EXTENSION_CONFIG_TYPE, names, version=one.version_info, nonce=one.nonce))
    # With a removal the response goes whole (the remaining subscription), as without lineage.
    put = [edited("f-s8", "s8")]
    removed = cache.patch(patched, {EXTENSION_CONFIG_TYPE: (put, ["f-s9"])})
    (whole,) = stream.on_resources_changed(removed)
    assert whole.complete
    assert len(names_of(whole)) == N - 1


def test_a_patched_type_knows_the_name_sets_that_covered_it() -> None:
    cache = SnapshotCache()
    snapshot = world(cache)
    ts = snapshot.get_type(EXTENSION_CONFIG_TYPE)
    everything = frozenset(f"f-{n}" for n in NAMES)
    assert ts.subset_of(everything).entries is ts.entries
    put = [edited("f-s7", "s7")]
    after = cache.patch(snapshot, {EXTENSION_CONFIG_TYPE: (put, ())}).get_type(EXTENSION_CONFIG_TYPE)
    assert everything in after.covers
    assert after.subset_of(everything).entries is after.entries
    # A new name: the old sets no longer cover it.
    extra = extension_pb2.TypedExtensionConfig(name="f-new")
    grown = cache.patch(
        snapshot, {EXTENSION_CONFIG_TYPE: ([("f-new", extra, extra.SerializeToString(deterministic=True))], ())}
    ).get_type(EXTENSION_CONFIG_TYPE)
    assert grown.covers == ()
    assert "f-new" not in grown.subset_of(everything).entries


def test_sotw_after_a_nack_the_next_answer_is_complete() -> None:
    cache = SnapshotCache()
    snapshot = world(cache)
    stream, _ = synced_sotw(snapshot)
    names = [f"f-{n}" for n in NAMES]
    (first,) = stream.on_request(request(EXTENSION_CONFIG_TYPE, names))
    stream.on_request(request(EXTENSION_CONFIG_TYPE, names, nonce=first.nonce, error="rejected"))
    put = [edited("f-s7", "s7")]
    (after,) = stream.on_resources_changed(cache.patch(snapshot, {EXTENSION_CONFIG_TYPE: (put, ())}))
    assert after.complete
    assert len(names_of(after)) == N
