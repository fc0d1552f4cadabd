"""The store's per-record parsed cache: a record's parsed, validated resources and problems, pickled beside it.

Re-reading 50 001 records from their YAML on every start took 12 s at 10 000 services (YAML with source
positions 2/3 of it, parsing and validation the rest); unpickling their parsed form takes ~1.5 s. The body
stays the truth: an entry is used only when its key matches the record it is read with: a digest of the model's
code (an upgrade re-parses everything), of the body and of every other input of the parse (source, namespace,
creation order), and of the entry's own bytes (a corrupt entry is not used). Anything else (no entry, a stale or
corrupt one, a class outside the model) falls back to parsing the YAML, which writes a new entry.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import Meta, Resource
from tcpmesh.store.backend import Key, Record

__all__ = ["ModelUnpickler", "Parsed", "checked", "decode", "encode", "entry_key", "model_version", "parse_cached"]

Parsed = tuple[list[Resource], list[Problem]]

_MODULES = ("tcpmesh.model.", "tcpmesh.model")
"""The only modules an entry may name classes of: the model's (pickle runs what an entry names)."""


def model_version() -> str:
    """A digest of the code that parses and validates a record (the model package and the store's parse) and
    of the interpreter's version: what an entry was made with."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(sys.version.encode())
    for path in [*sorted((root / "model").rglob("*.py")), root / "store" / "core.py", Path(__file__).resolve()]:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def entry_key(version: str, body: str, source: str, namespace: str, order: int, blob: bytes) -> str:
    """What an entry is valid for: the model's version, every input of the parse, and the entry's bytes."""
    digest = hashlib.blake2b(digest_size=20)
    for part in (version, source, namespace, str(order)):
        digest.update(part.encode() + b"\0")
    digest.update(body.encode())
    digest.update(b"\0")
    digest.update(blob)
    return digest.hexdigest()


def encode(parsed: Parsed) -> bytes:
    return pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL)


class ModelUnpickler(pickle.Unpickler):
    """Unpickles builtin values and the model's classes only (`found`: the classes met so far, shared by the
    unpicklers of one read)."""

    def __init__(self, file: io.BytesIO, found: dict[tuple[str, str], Any]) -> None:
        super().__init__(file)
        self._found = found

    def find_class(self, module: str, name: str) -> Any:
        hit = self._found.get((module, name))
        if hit is not None:
            return hit
        if module.startswith(_MODULES[0]) or module == _MODULES[1]:
            hit = self._found[module, name] = super().find_class(module, name)
            return hit
        raise pickle.UnpicklingError(f"{module}.{name} is not a model class")


def decode(
    blob: bytes, kind: str, namespace: str, name: str, found: dict[tuple[str, str], Any] | None = None
) -> Parsed | None:
    """The entry's resources and problems, or None when it is not what a parse of this record gives. `found`:
    the classes entries named so far, for the next entries of one read (each names ~6; 50 000 entries)."""
    try:
        value = ModelUnpickler(io.BytesIO(blob), {} if found is None else found).load()
    except Exception:  # any corrupt entry: the YAML is parsed instead
        return None
    return checked(value, namespace, name)


def checked(value: Any, namespace: str, name: str) -> Parsed | None:
    """`value` if it has the shape of a parse of the record `namespace`/`name` (resources and problems)."""
    if not (isinstance(value, tuple) and len(value) == 2):
        return None
    resources, problems = value
    if not (isinstance(resources, list) and isinstance(problems, list)):
        return None
    if not all(isinstance(p, Problem) for p in problems):
        return None
    for res in resources:
        # `Resource` is a union (with subscripted generics in it), so ask for the model's Meta instead of isinstance;
        # the record's kind is the store's name for it (KubernetesGateway for a Gateway API Gateway), not meta.kind.
        if not isinstance(getattr(res, "meta", None), Meta):
            return None
    if len(resources) == 1 and (resources[0].meta.namespace, resources[0].meta.name) != (namespace, name):
        return None
    return resources, problems


def parse_cached(
    rec: Record,
    *,
    parse: Callable[[Record], Parsed],
    order: Callable[[Record], int],
    version: str,
    entries: Mapping[Key, tuple[str, bytes]],
    fresh: list[tuple[Key, str, bytes]],
    classes: dict[tuple[str, str], Any] | None = None,
) -> Parsed:
    """The record's parse from its entry in `entries` when that matches it, else `parse(rec)` (its YAML); a new
    parse is queued in `fresh` to be written as the record's entry. `order` is the record's creation order, an
    input of the parse; `version` is :func:`model_version`; `classes`: `decode`'s `found`, for one read."""
    created = order(rec)
    entry = entries.get(rec.key)
    if entry is not None:
        key, blob = entry
        if key == entry_key(version, rec.body, rec.source, rec.namespace, created, blob):
            parsed = decode(blob, *rec.key, found=classes)
            if parsed is not None:
                return parsed
    parsed = parse(rec)
    blob = encode(parsed)
    fresh.append((rec.key, entry_key(version, rec.body, rec.source, rec.namespace, created, blob), blob))
    return parsed
