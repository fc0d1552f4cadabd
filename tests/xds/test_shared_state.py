"""Per-stream bookkeeping shares the snapshot's name -> entry mappings instead of copying them.

A stream in sync with its group must hold only references: what it sent, what was ACKed and each unanswered push
are the type snapshot's own mapping (or the shared named subset), so memory does not grow with streams x config.
"""

from __future__ import annotations

from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from tcpmesh.xds.cache import SnapshotCache, subset
from tcpmesh.xds.delta import DeltaStream
from tcpmesh.xds.sotw import SotwStream
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from tests.xds.ads_testkit import cla, cluster, listener

CACHE = SnapshotCache()


def snap(clusters: tuple[str, ...], timeout: int = 1) -> Any:
    return CACHE.build(
        {
            CLUSTER_TYPE: [cluster(c, timeout_s=timeout) for c in clusters],
            ENDPOINT_TYPE: [cla(c, "127.0.1.1") for c in clusters],
            LISTENER_TYPE: [listener("l0", 15000, clusters[0])],
        }
    )


def dreq(type_url: str, subscribe: tuple[str, ...] = (), *, nonce: str = "", **initial: str) -> Any:
    return discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=list(subscribe),
        response_nonce=nonce,
        initial_resource_versions=initial,
    )


def test_delta_stream_in_sync_references_the_snapshot() -> None:
    s = DeltaStream(nonce_prefix="d")
    first = snap(("c0", "c1"))
    s.on_resources_changed(first)
    (r,) = s.on_request(dreq(CLUSTER_TYPE))
    st = s._types[CLUSTER_TYPE]
    entries = first[CLUSTER_TYPE].entries
    assert st.sent_entries is entries
    assert next(iter(st.history.values())) is entries
    assert s.on_request(dreq(CLUSTER_TYPE, nonce=r.nonce)) == []
    assert st.acked_entries is entries

    # A change: only the difference travels, and the stream again references the new snapshot's mapping.
    second = snap(("c0", "c2"))
    (r,) = s.on_resources_changed(second)
    assert {x.name for x in r.resources} == {"c2"}
    assert list(r.removed_resources) == ["c1"]
    assert st.sent_entries is second[CLUSTER_TYPE].entries
    assert st.acked_entries is entries  # the previous mapping, untouched (not edited in place)
    assert dict(entries).keys() == {"c0", "c1"}
    s.on_request(dreq(CLUSTER_TYPE, nonce=r.nonce))
    assert st.acked_entries is second[CLUSTER_TYPE].entries
    assert s.known_resources()[CLUSTER_TYPE] == second[CLUSTER_TYPE].versions()


def test_delta_named_subscription_references_the_shared_subset() -> None:
    s = DeltaStream(nonce_prefix="d")
    world = snap(("c0", "c1", "c2"))
    s.on_resources_changed(world)
    (r,) = s.on_request(dreq(ENDPOINT_TYPE, ("c0", "c1")))
    wanted, _ = subset(world[ENDPOINT_TYPE], frozenset({"c0", "c1"}))
    assert s._types[ENDPOINT_TYPE].sent_entries is wanted
    s.on_request(dreq(ENDPOINT_TYPE, nonce=r.nonce))
    assert s._types[ENDPOINT_TYPE].acked_entries is wanted


def test_delta_reconnect_adopts_the_snapshot_mapping() -> None:
    world = snap(("c0",))
    versions = world[CLUSTER_TYPE].versions()
    s = DeltaStream(nonce_prefix="d")
    s.on_resources_changed(world)
    assert s.on_request(dreq(CLUSTER_TYPE, **versions)) == []  # already holds exactly this
    st = s._types[CLUSTER_TYPE]
    assert st.sent_entries is world[CLUSTER_TYPE].entries
    assert st.acked_entries is world[CLUSTER_TYPE].entries
    assert not st.initial
    assert s.known_resources()[CLUSTER_TYPE] == versions


def test_delta_reconnect_with_stale_versions_resends_and_reports_known_versions() -> None:
    world = snap(("c0", "c1"))
    s = DeltaStream(nonce_prefix="d")
    s.on_resources_changed(world)
    (r,) = s.on_request(dreq(CLUSTER_TYPE, c0=world[CLUSTER_TYPE].entries["c0"].version, c1="old", gone="x"))
    assert {x.name for x in r.resources} == {"c1"}
    assert list(r.removed_resources) == ["gone"]
    assert s.known_resources()[CLUSTER_TYPE] == world[CLUSTER_TYPE].versions()
    s.on_request(dreq(CLUSTER_TYPE, nonce=r.nonce))
    assert s.known_resources()[CLUSTER_TYPE] == world[CLUSTER_TYPE].versions()


def test_sotw_stream_references_the_snapshot() -> None:
    s = SotwStream(nonce_prefix="s")
    world = snap(("c0", "c1"))
    s.on_resources_changed(world)
    (r,) = s.on_request(discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE))
    st = s._types[CLUSTER_TYPE]
    assert st.sent_entries is world[CLUSTER_TYPE].entries
    s.on_request(
        discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE, version_info=r.version_info, response_nonce=r.nonce)
    )
    assert st.acked_entries is world[CLUSTER_TYPE].entries
    assert s.sent_resources()[CLUSTER_TYPE] == world[CLUSTER_TYPE].versions()
    # Removal is a change for full-state types; an unchanged snapshot sends nothing.
    assert s.on_resources_changed(world) == []
    (r,) = s.on_resources_changed(snap(("c0",)))
    assert len(r.message.resources) == 1
    assert set(s.sent_resources()[CLUSTER_TYPE]) == {"c0"}
