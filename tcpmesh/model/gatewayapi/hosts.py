"""Istio's host.Name matching (pkg/config/host/name.go), which the Gateway API conversion uses for listener and
route hostnames: ``Matches`` (the two overlap), ``SubsetOf`` and ``Names.Intersection``."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["intersection", "matches", "subset_of"]


def _wild(name: str) -> bool:
    return name.startswith("*")


def matches(a: str, b: str) -> bool:
    """host.Name.Matches: whether some host name is matched by both."""
    if _wild(a):
        if _wild(b):
            return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
        return b.endswith(a[1:])
    if _wild(b):
        return a.endswith(b[1:])
    return a == b


def subset_of(a: str, b: str) -> bool:
    """host.Name.SubsetOf: every name ``a`` matches is matched by ``b``."""
    if a == b:
        return True
    if _wild(b):
        return a[1:].endswith(b[1:]) if _wild(a) else a.endswith(b[1:])
    return False


def intersection(names: Iterable[str], others: Iterable[str]) -> list[str]:
    """host.Names.Intersection, in ``names`` order: for each overlapping pair, the narrower of the two."""
    out: list[str] = []
    other_list = list(others)
    for a in names:
        for b in other_list:
            pick = a if subset_of(a, b) else b if subset_of(b, a) else None
            if pick is not None and pick not in out:
                out.append(pick)
    return out
