"""Imports the protobuf modules of every type the server serves, so their classes are in the default symbol
database (cache.message_class parses a snapshot's bytes by type URL)."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

__all__ = ["cluster_pb2", "endpoint_pb2", "extension_pb2", "listener_pb2", "route_pb2", "secret_pb2"]
