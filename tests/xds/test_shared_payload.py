"""Shared response payloads: streams for one snapshot share the encoded resources, the bytes equal a response
built field by field, and a stream's queue coalesces SotW pushes and stays bounded."""

from __future__ import annotations

import time
from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from tcpmesh.xds import payload
from tcpmesh.xds import server as server_mod
from tcpmesh.xds.cache import Entry, Snapshot, SnapshotCache
from tcpmesh.xds.delta import DeltaStream
from tcpmesh.xds.payload import BodyCache, DeltaResponse, SotwResponse
from tcpmesh.xds.server import _Connection
from tcpmesh.xds.sotw import SotwStream
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from tests.xds.ads_testkit import cla, cluster, listener, node, request

CACHE = SnapshotCache()
N = node(app="a")


def snap(clusters: int = 3) -> Snapshot:
    return CACHE.build(
        {
            CLUSTER_TYPE: [cluster(f"c{i}") for i in range(clusters)],
            ENDPOINT_TYPE: [cla(f"c{i}", "127.0.1.1") for i in range(clusters)],
            LISTENER_TYPE: [listener("l0", 15000, "c0")],
        }
    )


BODIES = BodyCache()  # what a server gives all its streams


def sotw_stream(s: Snapshot, k: int) -> list[Any]:
    st = SotwStream(nonce_prefix=f"s{k}", bodies=BODIES)
    out = st.on_request(request(CLUSTER_TYPE, n=N))
    out += st.on_request(request(ENDPOINT_TYPE, ["c0", "c2"]))
    out += st.on_resources_changed(s)
    return out


def test_sotw_streams_share_the_body_and_bytes_equal_a_built_response() -> None:
    s = snap()
    a, b = sotw_stream(s, 1), sotw_stream(s, 2)
    assert [r.type_url for r in a] == [CLUSTER_TYPE, ENDPOINT_TYPE]
    for ra, rb in zip(a, b, strict=True):
        assert isinstance(ra, SotwResponse)
        assert ra.body is rb.body  # encoded once, shared
        assert ra.nonce != rb.nonce
    for r in a:
        built = discovery_pb2.DiscoveryResponse(version_info=r.version_info, type_url=r.type_url, nonce=r.nonce)
        entries = s[r.type_url].entries
        wanted = entries.values() if r.type_url == CLUSTER_TYPE else [entries["c0"], entries["c2"]]
        for e in wanted:
            built.resources.add(type_url=r.type_url, value=e.data)
        assert discovery_pb2.DiscoveryResponse.FromString(r.SerializeToString()) == built
        assert r.message == built
        assert [x.value for x in r.resources] == [e.data for e in wanted]


def test_a_body_is_encoded_in_one_join_for_its_first_stream_and_kept_once_a_second_sends_it() -> None:
    s = snap(clusters=5)
    first, second = sotw_stream(s, 3)[0], sotw_stream(s, 4)[0]
    assert first.body is second.body
    built = [
        discovery_pb2.DiscoveryResponse(version_info=r.version_info, type_url=CLUSTER_TYPE, nonce=r.nonce,
                                        resources=[any_pb2.Any(type_url=CLUSTER_TYPE, value=e.data)
                                                   for e in s[CLUSTER_TYPE].entries.values()])
        for r in (first, second)
    ]  # fmt: skip
    once = first.SerializeToString()
    assert discovery_pb2.DiscoveryResponse.FromString(once) == built[0]
    assert first.body._data is None  # its one stream: not kept
    assert discovery_pb2.DiscoveryResponse.FromString(second.SerializeToString()) == built[1]
    assert first.body._data is not None  # sent again: kept for the streams after
    assert first.SerializeToString() == once


def test_elements_encoded_ahead_are_the_ones_a_response_sends() -> None:
    s = snap(clusters=4)
    ts = s[CLUSTER_TYPE]
    payload.encode_ahead(ts)
    ahead = [e.wire.sotw for e in ts.entries.values()]
    assert all(w is not None and w[0] == CLUSTER_TYPE for w in ahead)
    response = sotw_stream(s, 5)[0]
    built = discovery_pb2.DiscoveryResponse(
        version_info=response.version_info, type_url=CLUSTER_TYPE, nonce=response.nonce,
        resources=[any_pb2.Any(type_url=CLUSTER_TYPE, value=e.data) for e in ts.entries.values()],
    )  # fmt: skip
    assert discovery_pb2.DiscoveryResponse.FromString(response.SerializeToString()) == built
    assert all(e.wire.sotw is w for e, w in zip(ts.entries.values(), ahead, strict=True))  # used, not made again


def test_delta_bytes_equal_a_built_response_and_wrappers_are_cached_per_entry() -> None:
    s = snap()
    d = DeltaStream(nonce_prefix="d")
    d.on_request(discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER_TYPE, node=N.to_proto()))
    (r,) = d.on_resources_changed(s)
    assert isinstance(r, DeltaResponse)
    built = discovery_pb2.DeltaDiscoveryResponse(system_version_info=r.system_version_info, type_url=CLUSTER_TYPE,
                                                 nonce=r.nonce)  # fmt: skip
    for e in s[CLUSTER_TYPE].entries.values():
        res = built.resources.add(name=e.name, version=e.version)
        res.resource.type_url = CLUSTER_TYPE
        res.resource.value = e.data
    assert discovery_pb2.DeltaDiscoveryResponse.FromString(r.SerializeToString()) == built
    entry = s[CLUSTER_TYPE].entries["c0"]
    assert entry.wire.delta is not None
    cached = entry.wire.delta[1]
    r.SerializeToString()
    assert entry.wire.delta[1] is cached


def conn() -> _Connection:
    return _Connection(1, "sotw", SotwStream(), time.time())


def test_unsent_sotw_push_of_a_type_is_replaced_by_the_newer_one_at_the_end() -> None:
    c = conn()
    s = snap()
    old_cds, eds = sotw_stream(s, 3)
    new_cds = sotw_stream(snap(4), 4)[0]
    c.put(old_cds)
    c.put(eds)
    c.put(new_cds)
    assert list(c.pending) == [eds, new_cds]


def test_delta_pushes_are_never_coalesced() -> None:
    c = _Connection(1, "delta", DeltaStream(), time.time())
    s = snap()
    d = DeltaStream(nonce_prefix="d")
    d.on_request(discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER_TYPE, node=N.to_proto()))
    (first,) = d.on_resources_changed(s)
    (second,) = d.on_resources_changed(snap(4))
    c.put(first)
    c.put(second)
    assert list(c.pending) == [first, second]


def test_a_stream_too_far_behind_is_closed(monkeypatch: Any) -> None:
    monkeypatch.setattr(server_mod, "MAX_QUEUED", 3)
    c = _Connection(1, "delta", DeltaStream(), time.time())
    for k in range(4):
        c.put(discovery_pb2.DeltaDiscoveryResponse(type_url=CLUSTER_TYPE, nonce=str(k)))
    assert c.closed
    assert not c.pending


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 2_100_000])
@pytest.mark.parametrize("version", ["", "0123456789abcdef"])
def test_hand_encoded_elements_are_protobufs_own_bytes(size: int, version: str) -> None:
    # Lengths either side of each varint width; an empty value and an empty version are left out, as protobuf does.
    entry = Entry("n" * (size % 200 + 1), version, bytes(range(256)) * (size // 256) + b"x" * (size % 256), None)
    any_ = any_pb2.Any(type_url=CLUSTER_TYPE, value=entry.data)
    sotw = discovery_pb2.DiscoveryResponse(resources=[any_]).SerializeToString(deterministic=True)
    assert b"".join(payload._sotw_items([entry], CLUSTER_TYPE)) == sotw
    resource = discovery_pb2.Resource(name=entry.name, version=entry.version, resource=any_)
    delta = discovery_pb2.DeltaDiscoveryResponse(resources=[resource]).SerializeToString(deterministic=True)
    assert payload._delta_item(entry, CLUSTER_TYPE) == delta
