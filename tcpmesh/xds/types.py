"""Type URLs, push order and the proxy identity the xds layer works with.

This module has no dependencies on the rest of the package so every other module (and the shell) can import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

_PREFIX = "type.googleapis.com/"

CLUSTER_TYPE = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_TYPE = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE_TYPE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET_TYPE = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
EXTENSION_CONFIG_TYPE = _PREFIX + "envoy.config.core.v3.TypedExtensionConfig"
"""ECDS: filter configs a listener names by `Filter.config_discovery`; updating one reaches new connections only."""

# Make-before-break: a listener may only point at clusters Envoy already has, and a cluster only finishes
# warming once its endpoints arrived (xds_protocol.rst, "Eventual consistency considerations").
ADS_ORDER: tuple[str, ...] = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE)

# Full push order for every type we know; unknown types go last, sorted, so the order stays deterministic.
# Extension configs follow listeners: Envoy asks for them once a listener names them (the listener warms
# until they arrive), and like listeners they may only name clusters the proxy already has.
PUSH_ORDER: tuple[str, ...] = (*ADS_ORDER, EXTENSION_CONFIG_TYPE, ROUTE_TYPE, SECRET_TYPE)

REFERRING_TYPES: tuple[str, ...] = (LISTENER_TYPE, EXTENSION_CONFIG_TYPE, ROUTE_TYPE)
"""Types whose resources name clusters (make-before-break: they wait for those clusters)."""

# SotW responses for these types carry the whole state: a missing resource means "delete it".
FULL_STATE_TYPES: frozenset[str] = frozenset({CLUSTER_TYPE, LISTENER_TYPE})

# Istio puts the workload's labels here in the node metadata.
LABELS_KEY = "LABELS"


def push_rank(type_url: str) -> tuple[int, str]:
    """Sort key that puts type URLs in make-before-break order."""
    try:
        return (PUSH_ORDER.index(type_url), "")
    except ValueError:
        return (len(PUSH_ORDER), type_url)


def resource_name(message: Message) -> str:
    """The xDS name of a resource: `name`, or `cluster_name` for a ClusterLoadAssignment."""
    fields = message.DESCRIPTOR.fields_by_name
    if "name" in fields:
        return str(getattr(message, "name"))  # noqa: B009 (protobuf messages have no static attributes)
    if "cluster_name" in fields:
        return str(getattr(message, "cluster_name"))  # noqa: B009
    raise ValueError(f"{message.DESCRIPTOR.full_name} has no name field")


def type_url_of(message: Message) -> str:
    return _PREFIX + message.DESCRIPTOR.full_name


def _labels_from(metadata: Mapping[str, Any]) -> Mapping[str, str]:
    raw = metadata.get(LABELS_KEY)
    if not isinstance(raw, Mapping):
        return MappingProxyType({})
    return MappingProxyType({str(k): str(v) for k, v in raw.items()})


@dataclass(frozen=True)
class Node:
    """What an Envoy says about itself in its bootstrap `node`.

    Equality covers every field, so two streams with equal Nodes get the same generated resources; the hash
    only uses id and cluster because metadata is a dict.
    """

    id: str
    cluster: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Taken from metadata["LABELS"] unless given explicitly."""
    user_agent: str = ""
    """`user_agent_name/user_agent_version` (or build version), for status pages."""

    def __post_init__(self) -> None:
        if not self.labels:
            object.__setattr__(self, "labels", _labels_from(self.metadata))

    @classmethod
    def from_proto(cls, node: Any) -> Node:
        """Build from an `envoy.config.core.v3.Node`."""
        metadata: dict[str, Any] = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
        version = node.user_agent_version
        if not version and node.HasField("user_agent_build_version"):
            v = node.user_agent_build_version.version
            version = f"{v.major_number}.{v.minor_number}.{v.patch}"
        agent = "/".join(p for p in (node.user_agent_name, version) if p)
        return cls(id=node.id, cluster=node.cluster, metadata=metadata, user_agent=agent)

    def to_proto(self) -> Any:
        """The `envoy.config.core.v3.Node` for this node (used by tests and clients)."""
        from envoy.config.core.v3 import base_pb2

        proto = base_pb2.Node(id=self.id, cluster=self.cluster)
        metadata = dict(self.metadata)
        if self.labels and LABELS_KEY not in metadata:
            metadata[LABELS_KEY] = dict(self.labels)
        if metadata:
            proto.metadata.update(metadata)
        return proto


Resources = Mapping[str, Sequence[Message]]
"""Resources per type URL."""

Generator = Callable[[Node], Resources]
"""Given a proxy, the resources it should have, per type URL."""
