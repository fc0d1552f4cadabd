"""Envoy resources in Envoy's own JSON/YAML form: proto3 JSON with snake_case names and ``@type`` on Any."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from google.protobuf import json_format

from tcpmesh.translator import EnvoyResources

__all__ = ["dump_json", "dump_yaml", "message_to_dict", "resources_to_dict"]


def message_to_dict(message: Any) -> dict[str, Any]:
    # The JSON round trip turns the OrderedDicts of Any fields into plain dicts YAML can print.
    return json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True))  # type: ignore[no-any-return]


def _dicts(messages: Iterable[Any]) -> list[dict[str, Any]]:
    return [message_to_dict(m) for m in messages]


def resources_to_dict(
    resources: EnvoyResources, kinds: Iterable[str] = ("listeners", "clusters", "endpoints")
) -> dict[str, list[dict[str, Any]]]:
    return {kind: _dicts(getattr(resources, kind)) for kind in kinds}


def dump_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def dump_yaml(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False, width=120)
