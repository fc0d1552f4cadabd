"""The Envoy protobuf messages the translator emits, and small constructors for well-known types.

Importing the extension modules here also registers their types, so ``Any`` fields resolve when a
resource is printed as JSON.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import (
    address_pb2,
    base_pb2,
    config_source_pb2,
    extension_pb2,
    health_check_pb2,
    protocol_pb2,
)
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, struct_pb2, wrappers_pb2

__all__ = [
    "TLS_INSPECTOR",
    "address_pb2",
    "any_pb2",
    "base_pb2",
    "circuit_breaker_pb2",
    "cluster_pb2",
    "config_source_pb2",
    "duration",
    "endpoint_components_pb2",
    "endpoint_pb2",
    "extension_pb2",
    "health_check_pb2",
    "http_protocol_options_pb2",
    "listener_components_pb2",
    "listener_pb2",
    "outlier_detection_pb2",
    "pack",
    "percent_pb2",
    "protocol_pb2",
    "socket_address",
    "struct",
    "struct_into",
    "struct_pb2",
    "tcp_proxy_pb2",
    "tls_inspector_pb2",
    "tls_pb2",
    "type_url",
    "u32",
    "wrappers_pb2",
]


TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
"""The listener filter that reads SNI and ALPN (gateway and sidecar listeners that match on them)."""


def type_url(message_class: Any) -> str:
    """The ``Any`` type URL of a message class (what ``Any.Pack`` writes)."""
    return f"type.googleapis.com/{message_class.DESCRIPTOR.full_name}"


def duration(ms: int) -> Any:
    return duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def u32(value: int) -> Any:
    return wrappers_pb2.UInt32Value(value=value)


def pack(message: Any) -> Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def socket_address(address: str, port: int) -> Any:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def struct(value: dict[str, Any]) -> Any:
    out = struct_pb2.Struct()
    struct_into(out, value)
    return out


def struct_into(target: Any, value: dict[str, Any]) -> None:
    """``target.update(value)`` for a Struct, without the pure-Python ``well_known_types`` helpers (hot path).

    Same conversions as ``Struct.update``: None → null, bool, str, int/float → number, dict → struct,
    list/tuple → list; anything else goes through ``Struct.update`` itself.
    """
    fields = target.fields
    for key, item in value.items():
        _set_value(fields[key], item)


def _set_value(out: Any, item: Any) -> None:
    if isinstance(item, str):
        out.string_value = item
    elif item is None:
        out.null_value = 0
    elif isinstance(item, bool):
        out.bool_value = item
    elif isinstance(item, (int, float)):
        out.number_value = item
    elif isinstance(item, dict):
        out.struct_value.Clear()
        struct_into(out.struct_value, item)
    elif isinstance(item, (list, tuple)):
        out.list_value.Clear()
        values = out.list_value.values
        for element in item:
            _set_value(values.add(), element)
    else:
        wrapper = struct_pb2.Struct()
        wrapper.update({"": item})
        out.CopyFrom(wrapper.fields[""])
