"""Snapshot cache and Node: versions are content hashes, identical content is shared."""

from __future__ import annotations

import gc

import pytest
from envoy.config.core.v3 import base_pb2

from tcpmesh.xds.cache import EMPTY_VERSION, SnapshotCache, content_version, type_changes
from tcpmesh.xds.types import ADS_ORDER, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, Node
from tests.xds.ads_testkit import cla, cluster, listener


def test_versions_are_deterministic_across_caches_and_order() -> None:
    a = SnapshotCache().build({CLUSTER_TYPE: [cluster("x"), cluster("y")]})
    b = SnapshotCache().build({CLUSTER_TYPE: [cluster("y"), cluster("x")]})
    assert a[CLUSTER_TYPE].version == b[CLUSTER_TYPE].version
    assert a[CLUSTER_TYPE].versions() == b[CLUSTER_TYPE].versions()
    assert list(a[CLUSTER_TYPE].entries) == ["x", "y"]
    c = SnapshotCache().build({CLUSTER_TYPE: [cluster("x", timeout_s=2), cluster("y")]})
    assert c[CLUSTER_TYPE].version != a[CLUSTER_TYPE].version
    assert c[CLUSTER_TYPE].entries["y"].version == a[CLUSTER_TYPE].entries["y"].version
    assert content_version([("x", "1"), ("y", "2")]) == content_version([("y", "2"), ("x", "1")])


def test_identical_content_is_shared() -> None:
    cache = SnapshotCache()
    s1 = cache.build({CLUSTER_TYPE: [cluster("x")], LISTENER_TYPE: [listener("l", 1, "x")]})
    s2 = cache.build({CLUSTER_TYPE: [cluster("x")], LISTENER_TYPE: [listener("l", 2, "x")]})
    assert s1[CLUSTER_TYPE] is s2[CLUSTER_TYPE]
    assert s1[LISTENER_TYPE] is not s2[LISTENER_TYPE]
    assert cache.stats() == {"entries": 3, "type_snapshots": 3}
    del s1, s2
    gc.collect()
    assert cache.stats() == {"entries": 0, "type_snapshots": 0}


def test_snapshot_iterates_in_push_order_and_missing_types_are_empty() -> None:
    s = SnapshotCache().build(
        {LISTENER_TYPE: [listener("l", 1, "x")], ENDPOINT_TYPE: [cla("x")], CLUSTER_TYPE: [cluster("x")]}
    )
    assert tuple(s) == ADS_ORDER
    assert s.get_type(ROUTE_TYPE).entries == {}
    assert s.get_type(ROUTE_TYPE).version == EMPTY_VERSION
    assert set(s.messages()[ENDPOINT_TYPE]) == {"x"}


def test_duplicates_keep_first_and_wrong_type_is_rejected() -> None:
    s = SnapshotCache().build({CLUSTER_TYPE: [cluster("x", timeout_s=1), cluster("x", timeout_s=9)]})
    assert s[CLUSTER_TYPE].entries["x"].message.connect_timeout.seconds == 1
    with pytest.raises(ValueError, match="generated under"):
        SnapshotCache().build({LISTENER_TYPE: [cluster("x")]})


def test_node_from_proto() -> None:
    proto = base_pb2.Node(id="router~127.0.1.1~gw.ns~ns.svc.cluster.local", cluster="gw", user_agent_name="envoy")
    proto.user_agent_build_version.version.major_number = 1
    proto.user_agent_build_version.version.minor_number = 30
    proto.metadata.update({"LABELS": {"istio": "ingressgateway"}, "NAMESPACE": "ns"})
    n = Node.from_proto(proto)
    assert n.labels == {"istio": "ingressgateway"}
    assert n.metadata["NAMESPACE"] == "ns"
    assert n.user_agent == "envoy/1.30.0"
    assert Node.from_proto(n.to_proto()) == Node(id=n.id, cluster="gw", metadata=n.metadata, user_agent="")
    assert hash(n) == hash(Node.from_proto(proto))
    assert Node.from_proto(base_pb2.Node(id="bare")).labels == {}


def test_type_changes_by_identity_between_unrelated_snapshots() -> None:
    # Two builds (no lineage): what changed is found by entry identity, in the order of each mapping.
    cache = SnapshotCache()
    before = cache.build({CLUSTER_TYPE: [cluster(n) for n in ("a", "b", "c", "d")]})[CLUSTER_TYPE]
    same = cache.build({CLUSTER_TYPE: [cluster(n) for n in ("a", "b", "c", "d")]})[CLUSTER_TYPE]
    assert type_changes(before, same) == ([], [])
    edited = cache.build({CLUSTER_TYPE: [cluster("a"), cluster("b", timeout_s=3), cluster("c"), cluster("d")]})
    assert type_changes(before, edited[CLUSTER_TYPE]) == (["b"], [])
    # As many names as before, but one swapped for another: both sides of the swap are reported.
    swapped = cache.build({CLUSTER_TYPE: [cluster(n) for n in ("a", "b", "e", "d")]})
    assert type_changes(before, swapped[CLUSTER_TYPE]) == (["e"], ["c"])
    fewer = cache.build({CLUSTER_TYPE: [cluster("d"), cluster("a", timeout_s=3)]})
    assert type_changes(before, fewer[CLUSTER_TYPE]) == (["a"], ["b", "c"])


def test_peek_reads_a_bytes_only_entry_without_keeping_the_parse() -> None:
    data = cluster("x", timeout_s=3).SerializeToString(deterministic=True)
    entry = SnapshotCache().build_serialized({CLUSTER_TYPE: [("x", None, data)]})[CLUSTER_TYPE].entries["x"]
    assert entry.peek().connect_timeout.seconds == 3
    assert entry.wire.message is None  # a look once reader leaves nothing held
    assert entry.message.connect_timeout.seconds == 3  # `message` parses and keeps
    assert entry.peek() is entry.message
