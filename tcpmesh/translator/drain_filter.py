"""The drain filter: a network RBAC filter in every tcp_proxy chain that closes the connections a drain selects.

Envoy closes TCP connections only per host (ejection, health failure) or per filter chain (all at the end of a
drain), and reads a tcp_proxy's settings once per connection. The RBAC filter in ``CONTINUOUS`` mode evaluates
its policy on every read, and its CEL condition can read the connection's start time (``request.time``), its
id and the metadata of the upstream host as EDS last set it. So the policy is fixed and the drain is data:

    request.time < timestamp(M.since) && double((connection.id * 40503u) % 65536u) < M.fraction * 65536.0

with ``M = xds.upstream_host_metadata.filter_metadata["tcpmesh.drain"]``. A missing key is a CEL error, which
the RBAC filter treats as no match: with no drain, nothing is closed. 40503/65536 ≈ 1/φ (Fibonacci hashing), so
consecutive connection ids spread evenly over the fraction's range and a linear ramp closes them evenly in time.
Only in the connection-preserving mode: ``--inline-weights`` keeps istiod's exact listeners.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from google.api.expr.v1alpha1 import syntax_pb2

from tcpmesh.translator.drain import DRAIN_METADATA
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.protos import listener_components_pb2, pack, type_url
from tcpmesh.translator.tcp_proxy import TCP_PROXY_FILTER

__all__ = ["DRAIN_FILTER", "DRAIN_POLICY", "DRAIN_STAT_PREFIX", "DRAIN_TYPE_URL", "add_drain_filters", "drain_filter"]

DRAIN_FILTER = "envoy.filters.network.rbac"
DRAIN_TYPE_URL = type_url(network_rbac_pb2.RBAC)
DRAIN_POLICY = "tcpmesh-drain"
DRAIN_STAT_PREFIX = "tcpmesh_drain."
"""Envoy counts the closed connections as ``tcpmesh_drain.rbac.denied``."""
_HASH_MULTIPLIER = 40503
_HASH_RANGE = 65536


class _Cel:
    """A parsed CEL expression (``google.api.expr.v1alpha1.Expr``), built by hand: ids are assigned in order."""

    def __init__(self) -> None:
        self._next = 0

    def _new(self) -> Any:
        self._next += 1
        return syntax_pb2.Expr(id=self._next)

    def ident(self, name: str) -> Any:
        e = self._new()
        e.ident_expr.name = name
        return e

    def select(self, operand: Any, field: str) -> Any:
        e = self._new()
        e.select_expr.operand.CopyFrom(operand)
        e.select_expr.field = field
        return e

    def call(self, function: str, *args: Any) -> Any:
        e = self._new()
        e.call_expr.function = function
        for arg in args:
            e.call_expr.args.add().CopyFrom(arg)
        return e

    def uint(self, value: int) -> Any:
        e = self._new()
        e.const_expr.uint64_value = value
        return e

    def double(self, value: float) -> Any:
        e = self._new()
        e.const_expr.double_value = value
        return e

    def string(self, value: str) -> Any:
        e = self._new()
        e.const_expr.string_value = value
        return e


def _condition() -> Any:
    c = _Cel()

    def drain_field(name: str) -> Any:
        metadata = c.select(c.select(c.ident("xds"), "upstream_host_metadata"), "filter_metadata")
        return c.call("_[_]", c.call("_[_]", metadata, c.string(DRAIN_METADATA)), c.string(name))

    opened_before = c.call("_<_", c.select(c.ident("request"), "time"), c.call("timestamp", drain_field("since")))
    hashed = c.call(
        "_%_", c.call("_*_", c.select(c.ident("connection"), "id"), c.uint(_HASH_MULTIPLIER)), c.uint(_HASH_RANGE)
    )
    selected = c.call(
        "_<_", c.call("double", hashed), c.call("_*_", drain_field("fraction"), c.double(float(_HASH_RANGE)))
    )
    return c.call("_&&_", opened_before, selected)


def drain_filter(options: TranslateOptions) -> Any:
    """The drain filter (the same for every chain; ``options`` only so it can be an index prototype)."""
    del options
    policy = rbac_pb2.Policy(condition=_condition())
    policy.permissions.add().any = True
    policy.principals.add().any = True
    config = network_rbac_pb2.RBAC(
        stat_prefix=DRAIN_STAT_PREFIX,
        enforcement_type=network_rbac_pb2.RBAC.CONTINUOUS,
        rules=rbac_pb2.RBAC(action=rbac_pb2.RBAC.DENY, policies={DRAIN_POLICY: policy}),
    )
    return listener_components_pb2.Filter(name=DRAIN_FILTER, typed_config=pack(config))


def add_drain_filters(listeners: Iterable[Any], prototype: Any) -> None:
    """Put a copy of the drain filter ``prototype`` before the tcp_proxy of every chain (listeners modified in
    place: they are freshly built)."""
    for listener in listeners:
        chains = list(listener.filter_chains)
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            filters = chain.filters
            for i, f in enumerate(filters):
                if f.name == TCP_PROXY_FILTER:
                    tail = []
                    for g in filters[i:]:
                        copy = listener_components_pb2.Filter()
                        copy.CopyFrom(g)
                        tail.append(copy)
                    del filters[i:]
                    filters.add().CopyFrom(prototype)
                    for copy in tail:
                        filters.add().CopyFrom(copy)
                    break
