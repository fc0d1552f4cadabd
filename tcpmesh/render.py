"""Envoy resources in Envoy's own JSON/YAML form: proto3 JSON with snake_case names and ``@type`` on Any."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from google.protobuf import json_format

from tcpmesh.translator import EnvoyResources
from tcpmesh.translator.drain_filter import DRAIN_FILTER, DRAIN_TYPE_URL
from tcpmesh.translator.encoded import as_message
from tcpmesh.translator.tcp_proxy import TCP_PROXY_FILTER

__all__ = ["REDACTED", "dump_json", "dump_yaml", "message_to_dict", "redact_keys", "resources_to_dict"]

REDACTED = "[redacted]"
"""What a private key prints as (Envoy's own config_dump says the same)."""


def _sorted_maps(value: Any, inside_map: bool = False) -> Any:
    """Sort the keys of protobuf map and Struct values (their print order is a hash order), keep field order."""
    if isinstance(value, dict):
        items = sorted(value.items()) if inside_map else value.items()
        return {k: _sorted_maps(v, inside_map or k in _MAP_FIELDS) for k, v in items}
    if isinstance(value, list):
        return [_sorted_maps(v, inside_map) for v in value]
    return value


_MAP_FIELDS = frozenset({"filter_metadata", "typed_filter_metadata", "typed_extension_protocol_options"})


def redact_keys(value: Any) -> Any:
    """Replace every inline ``private_key`` (SDS Secrets carry them) by ``{inline_string: [redacted]}``; a key
    named by file path stays, it is no key material."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "private_key" and isinstance(v, dict) and set(v) != {"filename"}:
                out[k] = {"inline_string": REDACTED}
            else:
                out[k] = redact_keys(v)
        return out
    if isinstance(value, list):
        return [redact_keys(v) for v in value]
    return value


def message_to_dict(message: Any) -> dict[str, Any]:
    """Envoy's JSON form, private keys redacted (every printed surface goes through here)."""
    # The JSON round trip turns the OrderedDicts of Any fields into plain dicts YAML can print.
    data = json.loads(json_format.MessageToJson(as_message(message), preserving_proto_field_name=True))
    return redact_keys(_sorted_maps(data))  # type: ignore[no-any-return]


def _dicts(messages: Iterable[Any]) -> list[dict[str, Any]]:
    return [message_to_dict(m) for m in messages]


DEFAULT_KINDS = ("listeners", "clusters", "endpoints", "extension_configs", "routes", "secrets")
_OPTIONAL_KINDS = ("extension_configs", "routes", "secrets")


def resources_to_dict(
    resources: EnvoyResources, kinds: Iterable[str] = DEFAULT_KINDS
) -> dict[str, list[dict[str, Any]]]:
    """Each kind's resources as Envoy JSON; ``extension_configs`` (the ECDS tcp_proxies), ``routes`` (RDS) and
    ``secrets`` (SDS, keys redacted) only when there are any."""
    return {
        kind: _dicts(getattr(resources, kind))
        for kind in kinds
        if kind not in _OPTIONAL_KINDS or getattr(resources, kind)
    }


def _inline_discovered(listener: dict[str, Any], configs: Mapping[str, Any]) -> dict[str, Any]:
    """Put each ECDS filter config back into the listener (static bootstraps have no ADS to fetch it from)."""
    chains = [
        *listener.get("filter_chains", ()),
        *([listener["default_filter_chain"]] if "default_filter_chain" in listener else []),
    ]
    for chain in chains:
        for i, f in enumerate(chain.get("filters", ())):
            if "config_discovery" in f and f["name"] in configs:
                typed = configs[f["name"]]["typed_config"]
                name = DRAIN_FILTER if typed.get("@type") == DRAIN_TYPE_URL else TCP_PROXY_FILTER
                chain["filters"][i] = {"name": name, "typed_config": typed}
    return listener


def _inline_routes(listener: dict[str, Any], routes: Mapping[str, Any]) -> dict[str, Any]:
    """Put each RDS RouteConfiguration into its http_connection_manager as ``route_config``."""
    for chain in listener.get("filter_chains", ()):
        for f in chain.get("filters", ()):
            rds = f.get("typed_config", {}).get("rds")
            if rds is not None:
                typed = f["typed_config"]
                del typed["rds"]
                typed["route_config"] = routes.get(rds["route_config_name"], {"name": rds["route_config_name"]})
    return listener


def dump_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def dump_yaml(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False, width=120)


def static_bootstrap(resources: EnvoyResources, admin_port: int = 0) -> dict[str, Any]:
    """A bootstrap with everything inlined (EDS clusters become STATIC with their assignment), for
    ``envoy --mode validate`` and for running the generated config without a control plane."""
    assignments = {cla.cluster_name: message_to_dict(cla) for cla in resources.endpoints}
    clusters = []
    for cluster in _dicts(resources.clusters):
        if cluster.get("type") == "EDS":
            cluster.pop("eds_cluster_config", None)
            cluster["type"] = "STATIC"
            cluster["load_assignment"] = assignments.get(cluster["name"], {"cluster_name": cluster["name"]})
        clusters.append(cluster)
    configs = {c.name: message_to_dict(c) for c in resources.extension_configs}
    routes = {r.name: message_to_dict(r) for r in resources.routes}
    listeners = [
        _inline_routes(_inline_discovered(listener, configs), routes) for listener in _dicts(resources.listeners)
    ]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }
