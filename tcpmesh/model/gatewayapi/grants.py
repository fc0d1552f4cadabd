"""ReferenceGrants: which cross-namespace references (route → backend, Gateway → Secret) are allowed."""

from __future__ import annotations

from collections.abc import Iterable

from tcpmesh.model.gatewayapi.resources import ReferenceGrant

__all__ = ["Grants"]


def _group(group: str) -> str:
    return "" if group == "core" else group


class Grants:
    """ReferenceGrants indexed by (from group, kind, namespace, to group, kind, to namespace)."""

    def __init__(self, grants: Iterable[ReferenceGrant]) -> None:
        self._names: dict[tuple[str, str, str, str, str, str], set[str]] = {}
        for grant in grants:
            for f in grant.from_:
                for t in grant.to:
                    key = (_group(f.group), f.kind, f.namespace, _group(t.group), t.kind, grant.meta.namespace)
                    self._names.setdefault(key, set()).add(t.name)

    def allowed(self, source: tuple[str, str, str], target: tuple[str, str, str, str]) -> bool:
        """Whether a ``(group, kind, namespace)`` object may refer to ``(group, kind, namespace, name)``; a grant
        without ``to.name`` allows every name."""
        (fg, fk, fns), (tg, tk, tns, name) = source, target
        names = self._names.get((_group(fg), fk, fns, _group(tg), tk, tns))
        return names is not None and ("" in names or name in names)
