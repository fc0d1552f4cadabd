"""What each built resource names, reported by the builders where they write the names.

The publisher hands these to the snapshot (make-before-break ordering and the snapshot check read them there), so
nothing parses a built message, or unpacks its ``Any`` fields, to find the names again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["REFERRING_KINDS", "Refs", "merged"]

Refs = Mapping[str, frozenset[str]]
"""The names one resource references, per EnvoyResources field of the named resources ("clusters",
"extension_configs", "routes"); a kind it names nothing of is left out."""

REFERRING_KINDS: tuple[str, ...] = ("listeners", "extension_configs", "routes")
"""The EnvoyResources fields whose resources name others: the keys of `EnvoyResources.references`."""


def merged(parts: Iterable[Refs]) -> dict[str, frozenset[str]]:
    """The union of ``parts`` per kind (e.g. a listener's from its filter chains'); empty kinds left out."""
    out: dict[str, frozenset[str]] = {}
    for part in parts:
        for kind, names in part.items():
            if names:
                had = out.get(kind)
                out[kind] = names if had is None else had | names
    return out
