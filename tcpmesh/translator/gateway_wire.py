"""A gateway's plain TCP listeners as bytes (wire.py): the common listener, one tcp_proxy chain per server and no
listener filter, is assembled from its prototype's bytes and never built as a message (encoded.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tcpmesh.translator.encoded import Encoded
from tcpmesh.translator.names import listener_name
from tcpmesh.translator.protos import address_pb2, listener_components_pb2, listener_pb2
from tcpmesh.translator.wire import key, number, split, submessage, text, varint_field, varint_key

__all__ = ["chain_bytes", "chain_chunks", "chain_message", "encoded_listener", "listener_chunks"]

_L = listener_pb2.Listener
_CHAIN = listener_components_pb2.FilterChain
_FILTERS = number(_CHAIN, "filters")
_FILTERS_KEY = key(_FILTERS)
_LISTENER_FIELDS = (number(_L, "name"), number(_L, "address"), number(_L, "filter_chains"))
_NAME_KEY, _ADDRESS_KEY, _CHAINS_KEY = (key(n) for n in _LISTENER_FIELDS)
_SOCKET_ADDRESS_KEY = key(number(address_pb2.Address, "socket_address"))
_SA = address_pb2.SocketAddress
_SA_ADDRESS, _SA_PORT = key(number(_SA, "address")), varint_key(number(_SA, "port_value"))


def chain_chunks(chain_prototype: Any) -> list[bytes]:
    """``chain_prototype`` (no match, no transport socket) cut where its filters go: for ``chain_bytes``."""
    return split(chain_prototype.SerializeToString(deterministic=True), (_FILTERS,))


def chain_bytes(chunks: Sequence[bytes], filter_data: bytes) -> bytes:
    """A FilterChain of the prototype cut into ``chunks`` with the one filter ``filter_data``, in deterministic
    order."""
    before, after = chunks
    return before + submessage(_FILTERS_KEY, filter_data) + after


def listener_chunks(prototype: Any) -> list[bytes]:
    """A listener prototype cut where name, address and filter chains go: for ``encoded_listener``."""
    return split(prototype.SerializeToString(deterministic=True), _LISTENER_FIELDS)


def encoded_listener(chunks: Sequence[bytes], bind: str, port: int, chains: Sequence[bytes]) -> Encoded:
    """The listener ``listener_name(bind, port)`` of the prototype cut into ``chunks``, on ``bind:port``, with the
    filter chains ``chains`` (each a FilterChain's bytes), in deterministic order."""
    name = listener_name(bind, port)
    before, after_name, after_address, rest = chunks
    socket = text(_SA_ADDRESS, bind) + varint_field(_SA_PORT, port)
    data = b"".join(
        (
            before,
            text(_NAME_KEY, name),
            after_name,
            submessage(_ADDRESS_KEY, submessage(_SOCKET_ADDRESS_KEY, socket)),
            after_address,
            *(submessage(_CHAINS_KEY, c) for c in chains),
            rest,
        )
    )
    return Encoded(_L, data, name)


def chain_message(chain: Any) -> Any:
    """A filter chain as a message (``chain_bytes`` gives bytes)."""
    return _CHAIN.FromString(chain) if isinstance(chain, bytes) else chain
