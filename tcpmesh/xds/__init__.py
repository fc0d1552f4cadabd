"""ADS server for Envoy: SotW and delta over grpc.aio, with a content-hashed snapshot cache. Knows nothing of Istio."""

from __future__ import annotations

from tcpmesh.xds.cache import Snapshot, SnapshotCache
from tcpmesh.xds.server import XdsServer
from tcpmesh.xds.status import AckEvent, Nack, ProxyStatus, SyncState, TypeStatus
from tcpmesh.xds.types import (
    ADS_ORDER,
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    Node,
)

__all__ = [
    "ADS_ORDER",
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "SECRET_TYPE",
    "AckEvent",
    "Nack",
    "Node",
    "ProxyStatus",
    "Snapshot",
    "SnapshotCache",
    "SyncState",
    "TypeStatus",
    "XdsServer",
]
