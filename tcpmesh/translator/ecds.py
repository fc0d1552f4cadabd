"""Connection-preserving routes: each tcp_proxy (and drain filter) moves out of its listener into ECDS.

A weight or destination change inside an inline tcp_proxy is a listener change, and Envoy drains the old
filter chain: every live connection through it is cut. With the tcp_proxy delivered by the extension config
discovery service (``Filter.config_discovery``, type ``TypedExtensionConfig`` over the same ADS stream), the
listener bytes only depend on what the chain matches, so a route change is an ECDS update, which Envoy applies
to new connections only (docs/architecture.md, "Connection-preserving routes").

The resource name is derived from the listener and the chain's match, never from the chain's position, so a
chain added before another does not rename (and so drain) the unchanged one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tcpmesh.translator.drain_filter import DRAIN_FILTER, DRAIN_TYPE_URL
from tcpmesh.translator.protos import config_source_pb2, extension_pb2, listener_components_pb2
from tcpmesh.translator.refs import Refs, merged
from tcpmesh.translator.tcp_proxy import TCP_PROXY_FILTER, TCP_PROXY_TYPE_URL

__all__ = ["TCP_PROXY_ECDS_SEPARATOR", "deliver_by_ecds", "ecds_name"]

TCP_PROXY_ECDS_SEPARATOR = "~"


def _match_key(chain: Any) -> str:
    """A readable, unique-per-listener description of what the chain matches (Envoy rejects two equal ones)."""
    m = chain.filter_chain_match
    parts: list[str] = []
    if m.server_names:
        parts.append("sni=" + ",".join(m.server_names))
    if m.prefix_ranges:
        parts.append("cidr=" + ",".join(f"{r.address_prefix}/{r.prefix_len.value}" for r in m.prefix_ranges))
    if m.HasField("destination_port"):
        parts.append(f"port={m.destination_port.value}")
    if m.transport_protocol:
        parts.append(f"transport={m.transport_protocol}")
    if m.application_protocols:
        parts.append("alpn=" + ",".join(m.application_protocols))
    if m.source_prefix_ranges:
        parts.append("src=" + ",".join(f"{r.address_prefix}/{r.prefix_len.value}" for r in m.source_prefix_ranges))
    return ";".join(parts)


def ecds_name(listener_name: str, chain: Any, default_chain: bool = False) -> str:
    """``<listener>~tcp_proxy`` for a chain without match, ``<listener>~tcp_proxy~sni=a,b`` otherwise."""
    base = f"{listener_name}{TCP_PROXY_ECDS_SEPARATOR}tcp_proxy"
    key = "default" if default_chain else _match_key(chain)
    return f"{base}{TCP_PROXY_ECDS_SEPARATOR}{key}" if key else base


def _config_source() -> Any:
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    source.ads.SetInParent()
    return source


def _discovered(name: str, type_url: str) -> Any:
    f = listener_components_pb2.Filter(name=name)
    f.config_discovery.config_source.CopyFrom(_config_source())
    f.config_discovery.type_urls.append(type_url)
    return f


def _chains(listener: Any) -> Iterable[tuple[Any, bool]]:
    for chain in listener.filter_chains:
        yield chain, False
    if listener.HasField("default_filter_chain"):
        yield listener.default_filter_chain, True


def deliver_by_ecds(
    listeners: Sequence[Any], chain_refs: Mapping[str, Sequence[Refs]]
) -> tuple[list[Any], dict[str, Refs], dict[str, Refs]]:
    """Replace every inline tcp_proxy of ``listeners`` (modified in place: they are freshly built) by a
    ``config_discovery`` filter. ``chain_refs``: per listener name, what each chain names (in chain order).

    Returns the TypedExtensionConfigs the listeners name, sorted by name; what each config names (its
    tcp_proxy's clusters move there from its chain); and what each listener now names (its configs, and its
    chains' other names), for those that name anything."""
    out: dict[str, Any] = {}
    config_refs: dict[str, Refs] = {}
    listener_refs: dict[str, Refs] = {}
    for listener in listeners:
        refs = chain_refs.get(listener.name, ())
        parts: list[Refs] = []
        for position, (chain, is_default) in enumerate(_chains(listener)):
            chain_names = refs[position] if position < len(refs) else {}
            configs: list[str] = []
            for i, f in enumerate(chain.filters):
                if not f.HasField("typed_config"):
                    continue
                if f.name == TCP_PROXY_FILTER:
                    name, type_url = ecds_name(listener.name, chain, is_default), TCP_PROXY_TYPE_URL
                    clusters = chain_names.get("clusters")
                    if clusters:
                        config_refs[name] = {"clusters": clusters}
                elif f.name == DRAIN_FILTER:
                    # The same (fixed) config for every chain of the listener: one resource.
                    name, type_url = f"{listener.name}{TCP_PROXY_ECDS_SEPARATOR}drain", DRAIN_TYPE_URL
                else:
                    continue
                configs.append(name)
                out[name] = extension_pb2.TypedExtensionConfig(name=name, typed_config=f.typed_config)
                chain.filters[i].CopyFrom(_discovered(name, type_url))
            kept = {k: v for k, v in chain_names.items() if k != "clusters"} if configs else chain_names
            parts.append({**kept, "extension_configs": frozenset(configs)})
        found = merged(parts)
        if found:
            listener_refs[listener.name] = found
    return [out[n] for n in sorted(out)], config_refs, listener_refs
