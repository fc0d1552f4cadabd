"""The store's content at one revision: its records, their parsed resources and problems, and the Config.

A view is advanced by the records that changed (the backend's `changes_since`) instead of being rebuilt from
every record, and the Config keeps the very tuples of the kinds nothing touched, so an edit costs what it
changed, not the size of the store: at 10 000 services re-reading every record and sorting 50 000 resources took
~1 s per edit, before any translation. Each kind stays in creation order (`Meta.order`, then namespace and name),
the order `Config.of` gives; a changed record keeps its creation revision and position, so it keeps its place.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tcpmesh.model.config import RESOURCE_FIELDS, Config
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import (
    Deployment,
    DestinationRule,
    Gateway,
    Resource,
    Secret,
    Service,
    ServiceEntry,
    VirtualService,
    WorkloadEntry,
)
from tcpmesh.store.backend import Key, Record

__all__ = ["ParseRecord", "StoreView", "record_term", "records_digest", "terms_digest"]

ParseRecord = Callable[[Record], tuple[list[Resource], list[Problem]]]

_FIELDS: Mapping[type, str] = {
    Gateway: "gateways",
    VirtualService: "virtual_services",
    DestinationRule: "destination_rules",
    ServiceEntry: "service_entries",
    WorkloadEntry: "workload_entries",
    Service: "services",
    Deployment: "deployments",
    Secret: "secrets",
}
"""Kinds a Config holds as they are. Others (the Gateway API's) are converted by `Config.of` across resources:
while the store holds any, the Config is rebuilt by `Config.of` on each change, as before."""


def _order(res: Resource) -> tuple[int, str, str]:
    return (res.meta.order, res.meta.namespace, res.meta.name)


_DIGEST_MASK = (1 << 128) - 1


def record_term(rec: Record) -> int:
    """A record's share of the view's digest: every input of its parse and of its place in the Config."""
    parts = (rec.kind, rec.namespace, rec.name, rec.source, str(rec.create_revision), str(rec.position), rec.body)
    return int.from_bytes(hashlib.blake2b("\0".join(parts).encode(), digest_size=16).digest(), "big")


def _hex(total: int) -> str:
    return f"{total & _DIGEST_MASK:032x}"


def records_digest(records: Iterable[Record]) -> str:
    """`StoreView.digest` of these records, without parsing them."""
    return terms_digest(sum(map(record_term, records)))


def terms_digest(total: int) -> str:
    """`StoreView.digest` of records whose terms add up to `total`."""
    return _hex(total)


class StoreView:
    """Records, parsed resources and Config at `revision`. Not thread-safe: the store holds a lock around it."""

    def __init__(
        self,
        revision: int,
        records: dict[Key, Record],
        parse: ParseRecord,
        previous: StoreView | None = None,
        saved: Mapping[Key, tuple[int, tuple[list[Resource], list[Problem]]]] | None = None,
    ) -> None:
        """`parse` each record, unless `previous` has it at the same revision or `saved` (viewfile.py) has its
        parse under its term."""
        self.revision = revision
        self.records = records
        self._parsed: dict[Key, tuple[Record, list[Resource], list[Problem]]] = {}
        self._with_problems: dict[Key, None] = {}
        """Keys whose resources have problems, in record order (an ordered set)."""
        self._count = 0
        self._terms: dict[Key, int] = {}
        self._sum = 0
        self._converted = 0
        """Resources of kinds outside _FIELDS (see there)."""
        reuse = previous._parsed if previous is not None else {}
        lists: dict[str, list[Resource]] = {f: [] for f in RESOURCE_FIELDS}
        saved = saved or {}
        for key, rec in records.items():
            term = record_term(rec)
            hit = reuse.get(key)
            if hit is None or hit[0].mod_revision != rec.mod_revision or not rec.mod_revision:
                found = saved.get(key)
                hit = (rec, *found[1]) if found is not None and found[0] == term else (rec, *parse(rec))
            self._add(key, hit, term)
            for res in hit[1]:
                field = _FIELDS.get(type(res))
                if field is not None:
                    lists[field].append(res)
        for items in lists.values():
            items.sort(key=_order)
        self._lists = lists
        self.config = self._whole() if self._converted else self._of_lists()

    @property
    def digest(self) -> str:
        """The content's digest: equal for equal records (whichever store, revision or process read them), kept
        up to date by `advance` at the cost of the records it changes. With the model's version it names the
        Config exactly: what a saved snapshot is valid for (publisher.py)."""
        return _hex(self._sum)

    def _of_lists(self) -> Config:
        fields: dict[str, Any] = {f: tuple(items) for f, items in self._lists.items()}
        return Config(**fields)

    def _whole(self) -> Config:
        return Config.of(res for hit in self._parsed.values() for res in hit[1])

    def _add(self, key: Key, hit: tuple[Record, list[Resource], list[Problem]], term: int | None = None) -> None:
        self._parsed[key] = hit
        term = self._terms[key] = record_term(hit[0]) if term is None else term
        self._sum += term
        self._count += len(hit[1])
        self._converted += sum(1 for res in hit[1] if type(res) not in _FIELDS)
        if hit[2]:
            self._with_problems[key] = None

    def parses(self) -> Iterator[tuple[Key, int, tuple[list[Resource], list[Problem]]]]:
        """Each record's key, term and parse (what store/viewfile.py saves)."""
        for key, (_, resources, problems) in self._parsed.items():
            yield key, self._terms[key], (resources, problems)

    def problems(self) -> list[Problem]:
        """Every record's problems (warnings included)."""
        return [p for key in self._with_problems for p in self._parsed[key][2]]

    def advance(self, revision: int, changed: Mapping[Key, Record | None], parse: ParseRecord) -> None:
        """Move to `revision`: `changed` has each record put since (None for each one deleted). The Config's
        lineage says which positions an edit replaced in place (a changed record keeps its place)."""
        touched: set[str] = set()
        in_place: dict[str, set[int]] = {}
        irregular: set[str] = set()
        """Fields where a resource came, went or moved: every later position may hold another object."""
        was_converted = self._converted > 0
        for key, rec in changed.items():
            old = self._parsed.pop(key, None)
            gone: dict[str, list[int]] = {}
            came: dict[str, list[int]] = {}
            if old is not None:
                self._sum -= self._terms.pop(key)
                self._count -= len(old[1])
                self._converted -= sum(1 for res in old[1] if type(res) not in _FIELDS)
                self._with_problems.pop(key, None)
                self.records.pop(key, None)
                for res in old[1]:
                    field = _FIELDS.get(type(res))
                    if field is not None:
                        gone.setdefault(field, []).append(_remove(self._lists[field], res))
            if rec is not None:
                hit = (rec, *parse(rec))
                self.records[key] = rec
                self._add(key, hit)
                for res in hit[1]:
                    field = _FIELDS.get(type(res))
                    if field is not None:
                        items = self._lists[field]
                        at = bisect.bisect_right(items, _order(res), key=_order)
                        items.insert(at, res)
                        came.setdefault(field, []).append(at)
            for field in gone.keys() | came.keys():
                touched.add(field)
                was, now = gone.get(field, ()), came.get(field, ())
                if len(was) == len(now) == 1 and was == now:
                    in_place.setdefault(field, set()).update(now)
                else:
                    irregular.add(field)
        self.revision = revision
        if self._converted:
            self.config = self._whole()
        elif was_converted:
            self.config = self._of_lists()  # the converted Gateways and VirtualServices are gone
        elif touched:
            fields: dict[str, Any] = {f: tuple(self._lists[f]) for f in touched}
            lineage = self.config.lineage
            for f in touched:
                before = getattr(self.config, f)
                if f in irregular:
                    lineage = lineage.without(f)
                else:
                    lineage = lineage.then(f, before, fields[f], in_place.get(f, ()))
            self.config = dataclasses.replace(self.config, **fields, lineage=lineage)

    def check(self, puts: Iterable[Record], removed: Iterable[Key], parse: ParseRecord) -> tuple[list[Problem], int]:
        """The problems and resource count of the content this change would produce (nothing is changed)."""
        puts = list(puts)
        gone = {r.key for r in puts} | set(removed)
        problems = [p for key in self._with_problems if key not in gone for p in self._parsed[key][2]]
        count = self._count - sum(len(self._parsed[k][1]) for k in gone if k in self._parsed)
        for rec in puts:
            resources, found = parse(rec)
            problems.extend(found)
            count += len(resources)
        return problems, count


def _remove(items: list[Resource], res: Resource) -> int:
    """Remove `res` (by identity) from a list in `_order`; returns where it was."""
    key = _order(res)
    i = bisect.bisect_left(items, key, key=_order)
    while i < len(items) and _order(items[i]) == key:
        if items[i] is res:
            del items[i]
            return i
        i += 1
    i = items.index(res)  # not where its order says: a slow search, never expected
    del items[i]
    return i
