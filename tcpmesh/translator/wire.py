"""Protocol-buffer wire format, for messages assembled from bytes and parsed once (hot path).

Building a message field by field from Python costs a wrapper object per sub-message touched (each one tracked by
the cyclic GC); the same message assembled as bytes and parsed with ``FromString`` is one C call. Parsing merges a
repeated occurrence of a sub-message field into the first and lets the last occurrence of a scalar win, so a
template's bytes followed by a few fields' bytes parse as the template with those fields set. Map entries are not
merged (the last entry with a key replaces the earlier one): a map's entries are always written whole here.

Field numbers come from the descriptors (``number``), never written by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import struct_pb2

__all__ = [
    "bool_value",
    "entry_prefix",
    "key",
    "list_value",
    "map_key_order",
    "number",
    "read_varint",
    "split",
    "string_entry",
    "string_value",
    "struct_entries",
    "struct_entry",
    "struct_value",
    "submessage",
    "text",
    "varint",
    "varint_field",
    "varint_key",
]

_LEN = 2
_VARINT = 0


def number(message_class: Any, field: str) -> int:
    """The field number of ``message_class.field``."""
    found: int = message_class.DESCRIPTOR.fields_by_name[field].number
    return found


_ONE_BYTE = tuple(bytes((i,)) for i in range(128))
"""The varints below 128, the common length of a field here."""


def varint(value: int) -> bytes:
    """``value`` (≥ 0) as a base-128 varint."""
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(field: int, wire_type: int = _LEN) -> bytes:
    """A field's key: its number and wire type (length-delimited unless told). Hot paths compute it once."""
    return varint(field << 3 | wire_type)


def submessage(field_key: bytes, data: bytes) -> bytes:
    """A length-delimited field: an embedded message (its serialised bytes), a string's or a bytes field's."""
    n = len(data)
    return field_key + (_ONE_BYTE[n] if n < 0x80 else varint(n)) + data


def text(field_key: bytes, value: str) -> bytes:
    """A string field (proto3: an empty one is not written)."""
    return submessage(field_key, value.encode()) if value else b""


def varint_key(field: int) -> bytes:
    """The key of an integer, enum or bool field (for ``varint_field``)."""
    return key(field, _VARINT)


def varint_field(field_key: bytes, value: int) -> bytes:
    """An integer, enum or bool field (``value`` ≥ 0; proto3: 0 is not written); ``field_key``: its
    ``varint_key``."""
    return field_key + (_ONE_BYTE[value] if value < 0x80 else varint(value)) if value else b""


_V = struct_pb2.Value.DESCRIPTOR.fields_by_name
_STRING_VALUE = key(_V["string_value"].number)
_BOOL_VALUE = _V["bool_value"].number
_STRUCT_VALUE = key(_V["struct_value"].number)
_LIST_VALUE = key(_V["list_value"].number)
_ENTRY, _ENTRY_KEY, _ENTRY_VALUE = key(1), key(1), key(2)  # Struct.fields / ListValue.values; a map entry's fields


def string_value(value: str) -> bytes:
    """A ``google.protobuf.Value`` holding a string (``struct_entry`` takes it)."""
    return submessage(_STRING_VALUE, value.encode())


def bool_value(value: bool) -> bytes:
    return key(_BOOL_VALUE, _VARINT) + varint(int(value))


def struct_value(entries: bytes) -> bytes:
    """A Value holding the Struct whose ``struct_entry`` bytes are ``entries`` (keys in ascending order)."""
    return submessage(_STRUCT_VALUE, entries)


def list_value(values: Sequence[bytes]) -> bytes:
    """A Value holding a list of Values."""
    return submessage(_LIST_VALUE, b"".join(submessage(_ENTRY, v) for v in values))


def entry_prefix(name: str) -> bytes:
    """What a Struct entry named ``name`` starts with, inside its length (for ``string_entry``)."""
    return submessage(_ENTRY_KEY, name.encode()) + _ENTRY_VALUE


def string_entry(prefix: bytes, value: str) -> bytes:
    """``struct_entry(name, string_value(value))`` for ``prefix = entry_prefix(name)``, in one call (hot path)."""
    data = value.encode()
    n = len(data)
    inner = _STRING_VALUE + (_ONE_BYTE[n] if n < 0x80 else varint(n)) + data
    n = len(inner)
    body = prefix + (_ONE_BYTE[n] if n < 0x80 else varint(n)) + inner
    n = len(body)
    return _ENTRY + (_ONE_BYTE[n] if n < 0x80 else varint(n)) + body


def struct_entry(name: str, value: bytes) -> bytes:
    """One entry of a ``google.protobuf.Struct``'s ``fields`` map: ``name`` → the Value ``value``. Deterministic
    serialisation writes the entries in ``map_key_order``."""
    return submessage(_ENTRY, submessage(_ENTRY_KEY, name.encode()) + submessage(_ENTRY_VALUE, value))


def _prefix_sorts_last() -> bool:
    """Whether this protobuf runtime's deterministic serialisation writes a string map key after the longer keys
    it is a prefix of (upb does: "namespace" before "name"; C++ and byte order do not)."""
    probe = struct_pb2.Struct()
    probe.update({"a": "", "ab": ""})
    data = probe.SerializeToString(deterministic=True)
    return data.index(struct_entry("ab", string_value(""))) < data.index(struct_entry("a", string_value("")))


_PREFIX_LAST = b"\xff" if _prefix_sorts_last() else b""
"""Appended to sort keys: UTF-8 has no 0xff byte, so this orders a prefix after its extensions and nothing else."""


def map_key_order(name: str) -> bytes:
    """The sort key of a string map key in deterministic serialisation: byte order, prefixes as the runtime puts
    them (``sorted(keys, key=map_key_order)``)."""
    return name.encode() + _PREFIX_LAST


def struct_entries(values: dict[str, bytes]) -> bytes:
    """The entries of a Struct (name → a Value's bytes) in deterministic order."""
    return b"".join(struct_entry(name, values[name]) for name in sorted(values, key=map_key_order))


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``data[at]`` and the position after it."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """The top-level fields of a serialised message, each (number, its bytes with the key), in order."""
    out = []
    at = 0
    while at < len(data):
        key, end = read_varint(data, at)
        wire_type = key & 7
        if wire_type == _VARINT:
            _, end = read_varint(data, end)
        elif wire_type == _LEN:
            size, end = read_varint(data, end)
            end += size
        elif wire_type == 1:
            end += 8
        elif wire_type == 5:
            end += 4
        else:
            raise ValueError(f"wire type {wire_type} (groups) not supported")
        out.append((key >> 3, data[at:end]))
        at = end
    return out


def split(data: bytes, numbers: tuple[int, ...]) -> list[bytes]:
    """Deterministic bytes of a message cut where the fields ``numbers`` (ascending) go, those fields dropped:
    ``len(numbers) + 1`` chunks, so that chunk 0, field numbers[0], chunk 1, … is again in field-number order
    (the order of deterministic serialisation)."""
    chunks = [bytearray() for _ in range(len(numbers) + 1)]
    for field, segment in _fields(data):
        if field not in numbers:
            chunks[sum(1 for n in numbers if n < field)] += segment
    return [bytes(c) for c in chunks]
