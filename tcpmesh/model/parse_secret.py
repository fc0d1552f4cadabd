"""Kubernetes Secrets (``v1``): ``type``, ``data`` (base64) and ``stringData``, as the API server accepts them.

Values are key material, so no message here ever quotes one: problems name the key and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import re

from tcpmesh.model.reader import Reader
from tcpmesh.model.resources import Meta, Secret
from tcpmesh.model.yamlsource import LocatedDict

__all__ = ["SECRET_KEY_PATTERN", "parse_secret"]

SECRET_KEY_PATTERN = re.compile(r"[-._a-zA-Z0-9]+")
"""validation.IsConfigMapKey: what a Secret's data keys may be made of."""


def _values(top: Reader, field: str, decode: bool) -> dict[str, bytes]:
    raw = top._typed(field, lambda v: isinstance(v, dict), "object")
    out: dict[str, bytes] = {}
    if not isinstance(raw, LocatedDict):
        return out
    for key, value in raw.items():
        path = f"{field}.{key}"
        line = raw.line_of(key)
        top.ctx.lines[path] = line
        if not isinstance(key, str) or not SECRET_KEY_PATTERN.fullmatch(key) or len(key) > 253:
            top.ctx.report(path, line, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
            continue
        if value is None:
            value = ""
        if not isinstance(value, str):
            top.ctx.report(path, line, "expected string")
            continue
        if decode:
            try:
                out[key] = base64.b64decode("".join(value.split()), validate=True)
            except (binascii.Error, ValueError):
                # The API server's words, without the value (it is a secret).
                top.ctx.report(path, line, "illegal base64 data")
                continue
        else:
            out[key] = value.encode()
    return out


def parse_secret(top: Reader, meta: Meta) -> Secret:
    """The Secret of a document's top level (Secrets have no ``spec``); ``stringData`` wins over ``data``."""
    kind = top.string("type") or "Opaque"
    data = _values(top, "data", decode=True)
    data.update(_values(top, "stringData", decode=False))
    top.boolean("immutable")
    return Secret(meta=meta, type=kind, data=tuple(sorted(data.items())))
