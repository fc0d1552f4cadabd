"""The config store: a directory of YAML files that `apply` / `delete` change like kubectl does.

Every change is validated first and written atomically (temp file + rename), so the directory never holds a
half-written file and a rejected change never reaches it. Files whose names start with "." are ignored by the
loader, which is where temporary files live.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tcpmesh.model.config import Config, merge_resources, parse_and_validate, parse_documents
from tcpmesh.model.parse import parse_document
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import Resource
from tcpmesh.model.yamlsource import Document, LocatedDict, load_documents, load_yaml_text, read_yaml_file, yaml_files

__all__ = ["KIND_ALIASES", "ApplyResult", "ConfigStore", "StoredResource", "resolve_kind"]

KIND_ALIASES = {
    "gateway": "Gateway", "gateways": "Gateway", "gw": "Gateway",
    "virtualservice": "VirtualService", "virtualservices": "VirtualService", "vs": "VirtualService",
    "destinationrule": "DestinationRule", "destinationrules": "DestinationRule", "dr": "DestinationRule",
    "serviceentry": "ServiceEntry", "serviceentries": "ServiceEntry", "se": "ServiceEntry",
    "workloadentry": "WorkloadEntry", "workloadentries": "WorkloadEntry", "we": "WorkloadEntry",
    "service": "Service", "services": "Service", "svc": "Service",
    "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
}  # fmt: skip

_KUBECTL_NAMES = {
    "Gateway": "gateway.networking.istio.io", "VirtualService": "virtualservice.networking.istio.io",
    "DestinationRule": "destinationrule.networking.istio.io", "ServiceEntry": "serviceentry.networking.istio.io",
    "WorkloadEntry": "workloadentry.networking.istio.io", "Service": "service", "Deployment": "deployment.apps",
}  # fmt: skip


def resolve_kind(text: str) -> str | None:
    return KIND_ALIASES.get(text.lower()) or (text if text in _KUBECTL_NAMES else None)


@dataclass(frozen=True, slots=True)
class StoredResource:
    resource: Resource
    document: Document


@dataclass
class ApplyResult:
    """What a change did (kubectl's "created" / "configured" / "unchanged" / "deleted" lines) or why not."""

    lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _key(res: Resource) -> tuple[str, str, str]:
    return (res.meta.kind, res.meta.namespace, res.meta.name)


def _file_name(key: tuple[str, str, str]) -> str:
    kind, namespace, name = key
    safe = re.sub(r"[^a-z0-9.-]", "-", f"{namespace}.{kind.lower()}.{name}")
    return f"{safe}.yaml"


_FILE_ORDER = 10**9
"""Creation order of a file's first resource per position of the file in the directory."""


@dataclass(frozen=True, slots=True)
class _ParsedFile:
    signature: tuple[int, int, int, int]
    """(inode, size, mtime_ns, position in the directory): any change means the file is read again."""
    items: tuple[StoredResource, ...]
    problems: tuple[Problem, ...]
    spans: tuple[tuple[int, int], ...] = ()
    """Character offsets of every document, so a change to one document needs no re-parse of the file."""


class ConfigStore:
    """A directory of YAML; ``load()`` is what the control plane serves.

    Parsed and validated files are kept until their inode, size, mtime or position changes, so a change to one
    file costs one file's parse, not the whole directory's (atomic writes replace the inode).
    """

    def __init__(self, directory: Path, default_namespace: str = "default") -> None:
        self.directory = directory
        self.default_namespace = default_namespace
        self._cache: dict[Path, _ParsedFile] = {}
        self._lock = threading.Lock()

    def _scan(self) -> tuple[list[_ParsedFile], list[Problem]]:
        if not self.directory.is_dir():
            return [], [Problem(file=str(self.directory), message="no such directory")]
        skipped: list[Problem] = []
        files = list(yaml_files(self.directory, skipped))
        out: list[_ParsedFile] = []
        with self._lock:
            cache: dict[Path, _ParsedFile] = {}
            for position, file in enumerate(files):
                try:
                    st = file.lstat()
                except OSError:
                    continue  # removed since the listing
                signature = (st.st_ino, st.st_size, st.st_mtime_ns, position)
                parsed = self._cache.get(file)
                if parsed is None or parsed.signature[:3] != signature[:3]:
                    parsed = self._parse(file, signature)
                elif parsed.signature != signature:
                    # Only its place among the files moved (a file was added or removed before it): renumber
                    # the creation order, as a re-parse would, without parsing again.
                    parsed = _renumbered(parsed, signature)
                cache[file] = parsed
                out.append(parsed)
            self._cache = cache
        return out, skipped

    def _parse(self, file: Path, signature: tuple[int, int, int, int]) -> _ParsedFile:
        documents, problems = read_yaml_file(file)
        items: list[StoredResource] = []
        for index, doc in enumerate(documents):
            # Files far apart in order, documents within a file after each other: creation order.
            resources, probs = parse_and_validate(
                [doc], self.default_namespace, signature[3] * _FILE_ORDER + index * 10**4
            )
            problems.extend(probs)
            items.extend(StoredResource(r, doc) for r in resources)
        spans = tuple((doc.start, doc.end) for doc in documents)
        return _ParsedFile(signature, tuple(items), tuple(problems), spans)

    def _cached_spans(self, file: Path) -> tuple[tuple[int, int], ...] | None:
        """The file's document offsets from the parse cache, if the file is unchanged since it was parsed."""
        with self._lock:
            parsed = self._cache.get(file)
        if parsed is None:
            return None
        try:
            st = file.lstat()
        except OSError:
            return None
        return parsed.spans if (st.st_ino, st.st_size, st.st_mtime_ns) == parsed.signature[:3] else None

    def load(self) -> tuple[Config, list[Problem]]:
        files, problems = self._scan()
        resources, replaced = merge_resources([[item.resource for item in f.items] for f in files])
        for f in files:
            problems.extend(f.problems)
        return Config.of(resources), problems + replaced

    def stored(self) -> list[StoredResource]:
        files, _ = self._scan()
        return [item for f in files for item in f.items]

    def get(self, kind: str | None = None, name: str | None = None, namespace: str | None = None) -> list[Resource]:
        out = []
        for item in self.stored():
            meta = item.resource.meta
            if kind and meta.kind != kind:
                continue
            if name and meta.name != name:
                continue
            if namespace and meta.namespace != namespace:
                continue
            out.append(item.resource)
        return sorted(out, key=lambda r: (r.meta.kind, r.meta.namespace, r.meta.name))

    # -- changes ----------------------------------------------------------------------------------

    def apply(self, text: str, source: str = "<stdin>", namespace: str | None = None) -> ApplyResult:
        """Validate ``text`` and write each of its resources; nothing is written when any problem is an error."""
        ns = namespace or self.default_namespace
        documents, problems = load_yaml_text(text, source)
        resources, more = parse_documents(documents, ns)
        result = ApplyResult(problems=problems + more)
        if not result.ok:
            return result
        if not resources:
            result.problems.append(Problem(file=source, message="no resources found"))
            return result
        by_doc = self._resources_by_document(documents, ns)
        existing = {_key(item.resource): item for item in self.stored()}
        for doc, res in by_doc:
            key = _key(res)
            body = self._document_body(doc, text, res.meta.namespace, ns)
            old = existing.get(key)
            kubectl = f"{_KUBECTL_NAMES[res.meta.kind]}/{res.meta.name}"
            if old is not None and _plain(old.document.data) == _plain(yaml.safe_load(body)):
                result.lines.append(f"{kubectl} unchanged")
                continue
            self._write_resource(key, body, old)
            result.lines.append(f"{kubectl} {'configured' if old else 'created'}")
            existing[key] = StoredResource(
                res, Document(str(self.directory / _file_name(key)), 0, 1, yaml.safe_load(body))
            )
        return result

    def delete(self, text: str, source: str = "<stdin>", namespace: str | None = None) -> ApplyResult:
        ns = namespace or self.default_namespace
        documents, problems = load_yaml_text(text, source)
        result = ApplyResult(problems=problems)
        if not result.ok:
            return result
        keys = [_key(res) for _, res in self._resources_by_document(documents, ns)]
        return self.delete_keys(keys, result)

    def delete_keys(self, keys: Iterable[tuple[str, str, str]], result: ApplyResult | None = None) -> ApplyResult:
        result = result or ApplyResult()
        existing = {_key(item.resource): item for item in self.stored()}
        for key in keys:
            kubectl = f"{_KUBECTL_NAMES.get(key[0], key[0].lower())}/{key[2]}"
            item = existing.pop(key, None)
            if item is None:
                result.problems.append(Problem(message=f'{kubectl} not found in namespace "{key[1]}"'))
                continue
            self._remove_document(item.document)
            result.lines.append(f"{kubectl} deleted")
        return result

    # -- files ------------------------------------------------------------------------------------

    def _resources_by_document(self, documents: Sequence[Document], ns: str) -> list[tuple[Document, Resource]]:
        out: list[tuple[Document, Resource]] = []
        for order, doc in enumerate(documents):
            resources, _ = parse_document(doc, order, ns)
            out.extend((doc, r) for r in resources)
        return out

    @staticmethod
    def _document_body(doc: Document, text: str, namespace: str, default_ns: str) -> str:
        """The document as the user wrote it, or re-serialised with the namespace when it relied on ``-n``."""
        data = doc.data
        meta = data.get("metadata") if isinstance(data, LocatedDict) else None
        if isinstance(meta, dict) and meta.get("namespace") is None and namespace != "default":
            plain = _plain(data)
            plain["metadata"]["namespace"] = namespace
            return str(yaml.safe_dump(plain, sort_keys=False))
        return text[doc.start : doc.end].rstrip() + "\n"

    def _write_resource(self, key: tuple[str, str, str], body: str, old: StoredResource | None) -> None:
        if old is not None:
            old_path = Path(old.document.file)
            spans = self._cached_spans(old_path)
            count = len(spans) if spans is not None else len(load_documents([old_path])[0])
            if count == 1:
                _atomic_write(old_path, body)  # the resource has a file of its own: keep the user's name
                return
            self._remove_document(old.document)
        _atomic_write(self.directory / _file_name(key), body)

    def _remove_document(self, doc: Document) -> None:
        path = Path(doc.file)
        with self._lock:
            parsed = self._cache.get(path)
        spans = self._cached_spans(path)
        text = path.read_text(encoding="utf-8")
        starts = [start for start, _ in spans] if spans is not None else []
        if parsed is not None and doc.start in starts[:-1]:
            # Cut from this document's start to the next one's: the rest of the file keeps its bytes, so its
            # parse is the cached one shifted, and the next reload needs no re-parse of a large file.
            a, b = doc.start, starts[starts.index(doc.start) + 1]
            written = _atomic_write(path, text[:a] + text[b:])
            shifted = _without_document(parsed, a, b, text[a:b].count("\n"))
            with self._lock:
                self._cache[path] = dataclasses.replace(
                    shifted, signature=(written.st_ino, written.st_size, written.st_mtime_ns, parsed.signature[3])
                )
            return
        if spans is None:
            documents, _ = load_yaml_text(text, doc.file)
            spans = tuple((d.start, d.end) for d in documents)
        rest = [text[start:end].rstrip() + "\n" for start, end in spans if start != doc.start]
        if rest:
            _atomic_write(path, "---\n".join(rest))
        else:
            path.unlink()


def _without_document(parsed: _ParsedFile, a: int, b: int, lines: int) -> _ParsedFile:
    """The parse of a file after text[a:b] (one whole document up to the next one's start) was cut out: what a
    re-parse would give, by shifting offsets, lines, indexes and creation order of the documents after it."""
    first_line = next((i.document.line for i in parsed.items if i.document.start == a), None)
    items: list[StoredResource] = []
    for item in parsed.items:
        d = item.document
        if d.start < a:
            items.append(item)
        elif d.start >= b:
            meta = item.resource.meta
            moved_meta = dataclasses.replace(
                meta,
                source=dataclasses.replace(meta.source, line=meta.source.line - lines),
                order=meta.order - 10**4,
                field_lines={k: v - lines if v > 0 else v for k, v in meta.field_lines.items()},
            )
            moved_doc = dataclasses.replace(d, index=d.index - 1, line=d.line - lines, start=d.start - (b - a),
                                            end=d.end - (b - a))  # fmt: skip
            items.append(StoredResource(dataclasses.replace(item.resource, meta=moved_meta), moved_doc))
    problems: list[Problem] = []
    next_line = (first_line or 0) + lines
    for problem in parsed.problems:
        if first_line is None or problem.line < first_line:
            problems.append(problem)
        elif problem.line >= next_line:
            problems.append(dataclasses.replace(problem, line=problem.line - lines))
    spans = tuple(
        (start, end) if start < a else (start - (b - a), end - (b - a)) for start, end in parsed.spans if start != a
    )
    return _ParsedFile(parsed.signature, tuple(items), tuple(problems), spans)


def _renumbered(parsed: _ParsedFile, signature: tuple[int, int, int, int]) -> _ParsedFile:
    shift = (signature[3] - parsed.signature[3]) * _FILE_ORDER
    items = tuple(
        StoredResource(
            dataclasses.replace(
                item.resource, meta=dataclasses.replace(item.resource.meta, order=item.resource.meta.order + shift)
            ),
            item.document,
        )
        for item in parsed.items
    )
    return _ParsedFile(signature, items, parsed.problems, parsed.spans)


def _atomic_write(path: Path, text: str) -> os.stat_result:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            written = os.fstat(handle.fileno())
        os.replace(tmp, path)
        return written
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
