"""A translator output resource kept as its deterministic bytes, not as a protobuf message.

Each protobuf message kept alive holds an arena of its own (about 5 KB, against the few hundred bytes of the
resource): at 10 000 services the translator's 70 000 resources cost ~300 MB and most of its time in allocation.
The common resources (a plain EDS cluster, an endpoint assignment) are assembled as bytes in the order
deterministic serialisation writes them (wire.py), so ``SerializeToString(deterministic=True)`` is the bytes
themselves and equal content is equal bytes. Readers that want fields get a message parsed on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

__all__ = ["Encoded", "Resources", "as_message", "kept", "kept_name"]


class Encoded:
    """A resource of ``message_type`` as its deterministic bytes ``data``; ``name`` is its xDS name.

    Attribute reads it does not answer go to ``message``, parsed once: read it, never change it (``parsed()``
    gives a copy to change). Equal to a message or an ``Encoded`` with the same content, like messages.
    """

    __slots__ = ("_message", "data", "message_type", "name")

    def __init__(self, message_type: Any, data: bytes, name: str) -> None:
        self.message_type = message_type
        self.data = data
        self.name = name
        self._message: Any = None

    def SerializeToString(self, deterministic: bool = False) -> bytes:
        return self.data

    def ByteSize(self) -> int:
        return len(self.data)

    @property
    def message(self) -> Any:
        """The message, parsed on first use and kept (shared: do not change it)."""
        if self._message is None:
            self._message = self.message_type.FromString(self.data)
        return self._message

    def parsed(self) -> Any:
        """A new message with this content, for a caller that changes it."""
        return self.message_type.FromString(self.data)

    @property
    def DESCRIPTOR(self) -> Any:
        return self.message_type.DESCRIPTOR

    @property
    def cluster_name(self) -> str:
        """A ClusterLoadAssignment's name (the field its xDS name is in)."""
        return self.name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(self.message, attribute)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Encoded):
            return self.message_type is other.message_type and self.data == other.data
        return bool(self.message == other)

    __hash__ = None  # type: ignore[assignment]  # like protobuf messages

    def __str__(self) -> str:
        return str(self.message)

    def __repr__(self) -> str:
        return f"Encoded({self.message_type.DESCRIPTOR.name}, {self.name!r}, {len(self.data)} bytes)"


def kept(resource: Any) -> Any:
    """How a translation holds a resource until it is done: an Encoded one as a (name, bytes) pair (see
    ``Resources``), a message as it is."""
    return (resource.name, resource.data) if isinstance(resource, Encoded) else resource


def kept_name(item: Any) -> str:
    """The xDS name of a ``kept`` resource."""
    if type(item) is tuple:
        return str(item[0])
    return str(item.cluster_name if item.DESCRIPTOR.name == "ClusterLoadAssignment" else item.name)


def as_message(resource: Any) -> Any:
    """The protobuf message of a translator output resource (a message is returned as it is)."""
    return resource.message if isinstance(resource, Encoded) else resource


class Resources(Sequence[Any]):
    """One kind of resource in order: messages, and Encoded ones held as (name, bytes) pairs of ``message_type``
    (an Encoded made on each read).

    Why not Encoded objects: every Python object a translation keeps counts toward the cyclic GC's next full
    pass, and at 10 000 services 70 000 of them made two full passes over the whole heap (~0.5 s). A tuple of a
    str and bytes holds nothing the collector follows, so it stops being tracked at its first pass.
    """

    __slots__ = ("_items", "message_type")

    def __init__(self, message_type: Any, items: Iterable[Any]) -> None:
        """``items``: messages, Encoded resources, or the ``kept`` form of either (taken as they are)."""
        self.message_type = message_type
        self._items = list(items)

    def _view(self, item: Any) -> Any:
        return Encoded(self.message_type, item[1], item[0]) if type(item) is tuple else item

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Any, ...]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return tuple(self._view(item) for item in self._items[index])
        return self._view(self._items[index])

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        view = self._view
        return (view(item) for item in self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Resources({self.message_type.DESCRIPTOR.name}, {len(self._items)})"
