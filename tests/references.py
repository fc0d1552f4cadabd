"""Test-side readers of the names resources reference, found by walking (and unpacking) the built messages.

Production code never does this: the translator reports what each resource names where it builds it
(EnvoyResources.references). The tests use these walks as the independent oracle that checks those reports, as
the model of what an Envoy holding a listener would send to, and to give hand-built xds test snapshots the
references an application would report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf.message import Message

from tcpmesh.translator import EnvoyResources
from tcpmesh.translator.encoded import as_message
from tcpmesh.translator.http_gateway import HCM_FILTER
from tcpmesh.translator.tcp_proxy import TCP_PROXY_FILTER
from tcpmesh.xds.types import CLUSTER_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE


def _chains(listener: Any) -> list[Any]:
    chains = [*listener.filter_chains]
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    return chains


def _tcp_proxy_clusters(typed: Any) -> set[str]:
    proxy = tcp_proxy_pb2.TcpProxy()
    if not typed.Unpack(proxy):
        return set()
    names = {proxy.cluster} if proxy.cluster else set()
    names.update(c.name for c in proxy.weighted_clusters.clusters)
    return names


def route_clusters(config: Any) -> set[str]:
    """The clusters a RouteConfiguration's routes send to (``cluster`` or ``weighted_clusters``)."""
    names: set[str] = set()
    for vhost in config.virtual_hosts:
        for route in vhost.routes:
            if route.HasField("route"):
                if route.route.cluster:
                    names.add(route.route.cluster)
                names.update(c.name for c in route.route.weighted_clusters.clusters)
    return names


def clusters_named(resource: Any) -> set[str]:
    """The clusters a Listener's inline tcp_proxies, an ECDS TcpProxy config or a RouteConfiguration send to."""
    full_name = resource.DESCRIPTOR.full_name
    if full_name == "envoy.config.route.v3.RouteConfiguration":
        return route_clusters(resource)
    if full_name == "envoy.config.core.v3.TypedExtensionConfig":
        return _tcp_proxy_clusters(resource.typed_config)
    return {
        name
        for chain in _chains(resource)
        for f in chain.filters
        if f.name == TCP_PROXY_FILTER and f.HasField("typed_config")
        for name in _tcp_proxy_clusters(f.typed_config)
    }


def _listener_refs(listener: Any) -> dict[str, frozenset[str]]:
    configs: set[str] = set()
    routes: set[str] = set()
    for chain in _chains(listener):
        for f in chain.filters:
            if f.HasField("config_discovery"):
                configs.add(f.name)
            elif f.name == HCM_FILTER:
                hcm = http_connection_manager_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                if hcm.HasField("rds"):
                    routes.add(hcm.rds.route_config_name)
    found = {"clusters": frozenset(clusters_named(listener)), "extension_configs": frozenset(configs),
             "routes": frozenset(routes)}  # fmt: skip
    return {k: v for k, v in found.items() if v}


def walked(resources: EnvoyResources) -> dict[str, dict[str, dict[str, frozenset[str]]]]:
    """What `resources.references` should be, found by walking the messages."""
    out: dict[str, dict[str, dict[str, frozenset[str]]]] = {"listeners": {}, "extension_configs": {}, "routes": {}}
    for listener in resources.listeners:
        if found := _listener_refs(listener):
            out["listeners"][listener.name] = found
    for kind in ("extension_configs", "routes"):
        for m in getattr(resources, kind):
            if names := clusters_named(m):
                out[kind][m.name] = {"clusters": frozenset(names)}
    return out


_TYPE_OF = {"clusters": CLUSTER_TYPE, "extension_configs": EXTENSION_CONFIG_TYPE, "routes": ROUTE_TYPE}


def cluster_references(resources: Mapping[str, Sequence[Message]]) -> dict[str, dict[str, dict[str, frozenset[str]]]]:
    """For hand-built resources (per type URL), what each listener, filter config and route config names, as
    `SnapshotCache.build` takes references (what an application would report with them)."""
    out: dict[str, dict[str, dict[str, frozenset[str]]]] = {}
    for m in resources.get(LISTENER_TYPE, ()):
        if found := _listener_refs(m):
            out.setdefault(LISTENER_TYPE, {})[getattr(m, "name")] = {_TYPE_OF[k]: v for k, v in found.items()}  # noqa: B009
    for type_url in (EXTENSION_CONFIG_TYPE, ROUTE_TYPE):
        for m in resources.get(type_url, ()):
            if names := clusters_named(m):
                out.setdefault(type_url, {})[getattr(m, "name")] = {CLUSTER_TYPE: frozenset(names)}  # noqa: B009
    return out


def assert_canonical(resources: EnvoyResources) -> None:
    """Every listener, cluster and assignment serialises to what its parse serialises to (deterministic): the
    resources assembled as bytes (translator/wire.py) are written in the runtime's own order, so equal content
    is equal bytes (and the same version) however a resource was built."""
    for kind in ("listeners", "clusters", "endpoints"):
        for resource in getattr(resources, kind):
            data = resource.SerializeToString(deterministic=True)
            again = type(as_message(resource)).FromString(data).SerializeToString(deterministic=True)
            assert data == again, f"{kind}: {resource.name if kind != 'endpoints' else resource.cluster_name}"
