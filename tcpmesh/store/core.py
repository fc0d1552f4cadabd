"""The config store: kubectl's apply / delete / get over a backend, every change validated as a whole first.

A change is parsed and validated, checked against the state it replaces (resourceVersion preconditions,
config-directory ownership, the resource limit) and committed as one transaction; if another writer committed
in between, it is checked again against the new state. A rejected change commits nothing and says why.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tcpmesh.collector import collector_paused
from tcpmesh.model.config import Config, parse_documents
from tcpmesh.model.parse import parse_document
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import Resource
from tcpmesh.model.validate import validate_resource
from tcpmesh.model.yamlsource import Document, LocatedDict, load_yaml_text
from tcpmesh.store.backend import Backend, ChangeTooLarge, Key, Record, StaleRevision
from tcpmesh.store.kinds import kubectl_name, resource_name
from tcpmesh.store.names import validate_meta
from tcpmesh.store.parsed import Parsed, model_version, parse_cached
from tcpmesh.store.view import StoreView, records_digest, terms_digest
from tcpmesh.store.viewfile import ViewFile

__all__ = ["ApplyResult", "ConfigStore", "Input"]

_ORDER = 100_000
"""Creation order: create_revision * _ORDER + position within the change (istiod's creationTimestamp)."""
_RETRIES = 50
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_IGNORED_META = ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields")


@dataclass
class ApplyResult:
    """What a change did (kubectl's "created" / "configured" / "unchanged" / "deleted" lines) or why not."""

    lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    """Per resource: kind, namespace, name, action, resourceVersion, generation."""
    conflict: bool = False
    """Rejected because of a stale resourceVersion or an owner (HTTP 409), not because it is invalid."""
    revision: int = 0

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)


@dataclass(frozen=True, slots=True)
class Input:
    """One resource of a change: its key, the body to store and the resourceVersion it requires (if any)."""

    resource: Resource
    body: str
    resource_version: str | None
    position: int


def _order(rec: Record) -> int:
    return rec.create_revision * _ORDER + rec.position


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _content(body: str) -> Any:
    """A body's data without the metadata the store itself sets: what "unchanged" compares."""
    data = _plain(yaml.load(body, Loader=_LOADER))  # a safe loader, libyaml's when available
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
        for key in _IGNORED_META:
            data["metadata"].pop(key, None)
    return data


def _key(res: Resource) -> Key:
    return (res.meta.kind, res.meta.namespace, res.meta.name)


class ConfigStore:
    """``load()`` is what the control plane serves; ``apply``/``delete`` are the API's changes."""

    def __init__(
        self,
        backend: Backend,
        directory: Path,
        default_namespace: str = "default",
        *,
        max_resources: int | None = None,
        view_file: ViewFile | None = None,
    ) -> None:
        """`view_file`: the parsed view saved at a server's last stop (viewfile.py), read at the first load and
        written by `save_view`."""
        self.backend = backend
        self.directory = directory
        """The state dir (test hooks and messages name it)."""
        self.default_namespace = default_namespace
        self.max_resources = max_resources
        self._write = threading.Lock()
        self._view: StoreView | None = None
        self._view_lock = threading.Lock()
        self._read: tuple[int, dict[Key, Record]] | None = None
        """Records `content_key` read before the first load, for that load."""
        self.input_problems: dict[str, list[Problem]] = {}
        """Config-directory files whose content is not in the store, and why (set by DirectoryInput)."""
        self._model_version = model_version()
        self._view_file = view_file
        self._view_file_digest: str | None = None
        """The digest of the view the file holds, when known (`save_view` has nothing to do while it is current)."""

    @property
    def view_path(self) -> Path | None:
        """Where the saved parsed view is read from (None: it is not)."""
        return self._view_file.path if self._view_file is not None else None

    @property
    def location(self) -> str:
        return self.backend.location

    def close(self) -> None:
        self.backend.close()

    def save_view(self) -> None:
        """Save the parsed view in the view file, unless it already holds it (a server's stop: the next start
        then reads one file instead of the per-record cache; ~1 s at 10 000 services)."""
        with self._view_lock:
            view = self._view
            if self._view_file is None or view is None or view.digest == self._view_file_digest:
                return
            self._view_file.write(self._model_version, view.parses())
            self._view_file_digest = view.digest

    # -- reading ----------------------------------------------------------------------------------

    def _parse_record(self, rec: Record) -> Parsed:
        documents, problems = load_yaml_text(rec.body, rec.source)
        resources: list[Resource] = []
        for doc in documents:
            parsed, probs = parse_document(doc, _order(rec), rec.namespace)
            problems.extend(probs)
            for res in parsed:
                problems.extend(validate_resource(res))
                resources.append(res)
        return resources, problems

    def _current(self) -> StoreView:
        """The view at the backend's revision (call with `_view_lock` held): advanced by what changed since the
        last one when the backend can say (SQLite), else read whole, reusing the parse of unchanged records."""
        view = self._view
        entries: dict[Key, tuple[str, bytes]] = {}
        fresh: list[tuple[Key, str, bytes]] = []
        cached = functools.partial(
            parse_cached,
            parse=self._parse_record,
            order=_order,
            version=self._model_version,
            entries=entries,
            fresh=fresh,
            classes={},
        )
        if view is not None:
            changes_since = getattr(self.backend, "changes_since", None)
            if changes_since is not None:
                got = changes_since(view.revision)
                if got is not None:
                    revision, changed = got
                    if changed or revision != view.revision:
                        view.advance(revision, changed, cached)
                        self._put_parsed(fresh)
                    return view
        # No collector passes while 50 000 records and their resources are read and built: each pass would walk
        # all of them (a third of the time at 10 000 services). Nothing here makes reference cycles. The first
        # view is then frozen out of the collector, as a server freezes what it built at start: the allocations
        # counted meanwhile would otherwise start a pass over all of them at the next allocation (0.18 s at
        # 10 000 services). Frozen objects are still freed by reference counting when a later view replaces
        # them; only the first is frozen, so cyclic garbage of objects alive then is all that can outlive them.
        with collector_paused() as pause:
            pause.freeze = view is None
            read, self._read = self._read, None
            revision, records = read if read is not None else self.backend.read_all()
            if view is None or revision != view.revision:
                saved = self._view_file.read(self._model_version) if view is None and self._view_file else {}
                entries_read = False

                def parse(rec: Record) -> Parsed:
                    nonlocal entries_read
                    if not entries_read:  # the per-record cache: read once a record is not in the saved view
                        entries_read = True
                        read_entries = getattr(self.backend, "parsed_entries", None)
                        if read_entries is not None:
                            entries.update(read_entries())
                    return cached(rec)

                view = self._view = StoreView(revision, records, parse, view, saved)
                whole = len(saved) == len(records) and view.digest == terms_digest(sum(t for t, _ in saved.values()))
                if saved and whole:
                    self._view_file_digest = view.digest  # every record came from the file: it holds this view
                entries.clear()
                del saved
        self._put_parsed(fresh)
        return view

    def _put_parsed(self, fresh: list[tuple[Key, str, bytes]]) -> None:
        put = getattr(self.backend, "put_parsed", None)
        if put is not None and fresh:
            put(fresh)

    def load(self) -> tuple[Config, list[Problem]]:
        config, problems, _ = self.load_keyed()
        return config, problems

    def load_keyed(self) -> tuple[Config, list[Problem], str]:
        """`load` and the content's key: equal keys, equal Config (the records' digest and the model's version)."""
        with self._view_lock:
            view = self._current()
            return view.config, view.problems(), f"{self._model_version}-{view.digest}"

    def content_key(self) -> str:
        """`load_keyed`'s key of the backend's current content, from its records alone (nothing is parsed).
        The first load reuses the records read here (at start: 50 000 rows read once, not twice); a change
        committed in between is then a later revision, which the next load reads."""
        with self._view_lock:
            revision, records = self.backend.read_all()
            if self._view is None:
                self._read = (revision, records)
        return f"{self._model_version}-{records_digest(records.values())}"

    def records(self) -> list[Record]:
        _, records = self.backend.read_all()
        return sorted(records.values(), key=lambda r: r.key)

    def get(self, kind: str | None = None, name: str | None = None, namespace: str | None = None) -> list[Record]:
        return [
            r
            for r in self.records()
            if (not kind or r.kind == kind)
            and (not name or r.name == name)
            and (not namespace or r.namespace == namespace)
        ]

    def revision(self) -> int:
        return self.backend.revision()

    async def changes(self, stop: asyncio.Event | None = None, interval: float = 0.05) -> AsyncIterator[int]:
        """Yields the store revision each time it moves (a watch from the current revision)."""
        last = await asyncio.to_thread(self.backend.revision)
        while stop is None or not stop.is_set():
            await asyncio.sleep(interval)
            try:
                current = await asyncio.to_thread(self.backend.revision)
            except Exception:  # a backend outage is reported by apply and readiness, not here
                continue
            if current != last:
                last = current
                yield current

    # -- changes ----------------------------------------------------------------------------------

    def inputs(self, text: str, source: str, namespace: str | None = None) -> tuple[list[Input], list[Problem]]:
        """Parse and validate the documents of one request (each resource alone, names as the API server)."""
        ns = namespace or self.default_namespace
        documents, problems = load_yaml_text(text, source)
        if any(p.is_error for p in problems):
            return [], problems
        _, more = parse_documents(documents, ns)
        problems = problems + more
        out: list[Input] = []
        for doc in documents:
            parsed, _ = parse_document(doc, 0, ns)
            for res in parsed:
                problems.extend(validate_meta(res))
                out.append(Input(res, _body(doc, text, res, len(parsed) > 1), _requested_version(doc), len(out)))
        return out, problems

    def apply(self, text: str, source: str = "<stdin>", namespace: str | None = None) -> ApplyResult:
        inputs, problems = self.inputs(text, source, namespace)
        result = ApplyResult(problems=problems)
        if result.ok and not inputs:
            result.problems.append(Problem(file=source, message="no resources found"))
        if not result.ok:
            return result
        return self.change(inputs, [], source=source, result=result)

    def delete(self, text: str, source: str = "<stdin>", namespace: str | None = None) -> ApplyResult:
        ns = namespace or self.default_namespace
        documents, problems = load_yaml_text(text, source)
        result = ApplyResult(problems=problems)
        if not result.ok:
            return result
        keys = [_key(r) for doc in documents for r in parse_document(doc, 0, ns)[0]]
        return self.delete_keys(keys, result)

    def delete_keys(self, keys: Iterable[Key], result: ApplyResult | None = None) -> ApplyResult:
        return self.change([], list(keys), result=result or ApplyResult())

    def change(
        self,
        inputs: Sequence[Input],
        deletes: Sequence[Key],
        *,
        source: str = "<stdin>",
        owner: str | None = None,
        replace_owned: bool = False,
        result: ApplyResult | None = None,
    ) -> ApplyResult:
        """Apply ``inputs`` and delete ``deletes`` in one transaction, after validating the resulting config.

        ``owner``: the config-directory file making the change (it may change what it owns; the API may not).
        ``replace_owned``: the owner's resources not in ``inputs`` are deleted (a file's new content replaces
        its old content).
        """
        base = result or ApplyResult()
        with self._write:
            for _ in range(_RETRIES):
                attempt = replace(base, lines=[], problems=list(base.problems), items=[])
                with self._view_lock:
                    view = self._current()
                    revision = view.revision
                    plan = self._plan(attempt, view, inputs, deletes, source, owner, replace_owned)
                if plan is None:
                    return attempt
                puts, removed = plan
                if not puts and not removed:
                    attempt.revision = revision
                    return attempt
                try:
                    attempt.revision = self.backend.commit(revision, puts, removed)
                except StaleRevision:
                    continue  # another replica committed first: check again against its state
                except ChangeTooLarge as exc:
                    attempt.problems.append(Problem(file=source, message=str(exc)))
                    attempt.lines, attempt.items = [], []
                    return attempt
                for item in attempt.items:
                    if item["action"] != "unchanged" and item["action"] != "deleted":
                        item["resourceVersion"] = str(attempt.revision)
                return attempt
        base.problems.append(Problem(message="the store kept changing under this change; try again"))
        return base

    def _plan(
        self,
        result: ApplyResult,
        view: StoreView,
        inputs: Sequence[Input],
        deletes: Sequence[Key],
        source: str,
        owner: str | None,
        replace_owned: bool,
    ) -> tuple[list[Record], list[Key]] | None:
        records = view.records
        puts: list[Record] = []
        removed: list[Key] = []
        touched: set[Key] = set()
        for item in inputs:
            res = item.resource
            key = _key(res)
            touched.add(key)
            old = records.get(key)
            if not self._may_change(result, key, old, owner, item.resource_version):
                continue
            if old is not None and old.owner == (owner or "") and _content(old.body) == _content(item.body):
                result.lines.append(f"{kubectl_name(*key[::2])} unchanged")
                result.items.append(_item(old, "unchanged"))
                continue
            rec = Record(
                *key, body=item.body, source=owner or source, owner=owner or "",
                generation=(old.generation + 1) if old else 1,
                create_revision=old.create_revision if old else 0, position=old.position if old else item.position,
            )  # fmt: skip
            puts.append(rec)
            action = "configured" if old else "created"
            result.lines.append(f"{kubectl_name(*key[::2])} {action}")
            result.items.append(_item(rec, action))
        gone = list(deletes)
        if replace_owned and owner:
            gone += [k for k, r in records.items() if r.owner == owner and k not in touched]
        for key in gone:
            old = records.get(key)
            if old is None:
                if key in deletes:
                    result.problems.append(
                        Problem(message=f'{kubectl_name(*key[::2])} not found in namespace "{key[1]}"')
                    )
                continue
            if not self._may_change(result, key, old, owner, None):
                continue
            removed.append(key)
            result.lines.append(f"{kubectl_name(*key[::2])} deleted")
            result.items.append(_item(old, "deleted"))
        if not result.ok:
            return None
        if puts or removed:
            self._validate_whole(result, view, puts, removed)
        return (puts, removed) if result.ok else None

    def _may_change(self, result: ApplyResult, key: Key, old: Record | None, owner: str | None, rv: str | None) -> bool:
        kind, namespace, name = key
        what = f'{resource_name(kind)} "{name}"'
        if old is not None and old.owner and old.owner != (owner or ""):
            result.conflict = True
            result.problems.append(
                Problem(
                    message=f"Operation cannot be fulfilled on {what}: owned by the config directory file "
                    f"{old.owner}; change it there",
                    kind=kind,
                    namespace=namespace,
                    name=name,
                )
            )
            return False
        if rv is not None and (old is None or str(old.mod_revision) != rv):
            result.conflict = True
            result.problems.append(
                Problem(
                    message=f"Operation cannot be fulfilled on {what}: the object has been modified; please apply "
                    "your changes to the latest version and try again",
                    kind=kind,
                    namespace=namespace,
                    name=name,
                    field="metadata.resourceVersion",
                )
            )
            return False
        return True

    def _validate_whole(self, result: ApplyResult, view: StoreView, puts: list[Record], removed: list[Key]) -> None:
        """The config this change would produce, checked as the control plane will serve it."""
        problems, count = view.check(puts, removed, self._parse_record)
        result.problems.extend(p for p in problems if p.is_error)
        if self.max_resources is not None and count > self.max_resources:
            result.problems.append(
                Problem(
                    file=self.location,
                    message=f"{count} resources; the limit is {self.max_resources}",
                )
            )


def _item(rec: Record, action: str) -> dict[str, Any]:
    return {
        "kind": rec.kind,
        "namespace": rec.namespace,
        "name": rec.name,
        "action": action,
        "resourceVersion": str(rec.mod_revision),
        "generation": rec.generation,
    }


def _requested_version(doc: Document) -> str | None:
    meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return None if rv is None or rv == "" else str(rv)


def _body(doc: Document, text: str, res: Resource, several: bool) -> str:
    """The document as the user wrote it (comments kept), or re-serialised when it must change: one item of a
    List, a namespace that came from ``-n``, or a resourceVersion precondition (not content)."""
    data = doc.data
    meta = data.get("metadata") if isinstance(data, LocatedDict) else None
    # The namespace is part of the record's key, so a document relying on ``-n`` is kept as written too.
    if not several and isinstance(meta, dict) and not any(k in meta for k in _IGNORED_META):
        return text[doc.start : doc.end].rstrip() + "\n"
    if several and isinstance(data, dict) and isinstance(data.get("items"), list):
        plain: Any = next(
            (
                _plain(i)
                for i in data["items"]
                if isinstance(i, dict)
                and i.get("kind") == res.meta.kind
                and (i.get("metadata") or {}).get("name") == res.meta.name
            ),
            {},
        )
    else:
        plain = _plain(data)
    metadata = plain.setdefault("metadata", {})
    for key in _IGNORED_META:
        metadata.pop(key, None)
    return str(yaml.safe_dump(plain, sort_keys=False))
