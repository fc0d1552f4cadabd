"""Multi-document YAML loading that remembers where every mapping key came from.

Mappings load as :class:`LocatedDict` and sequences as :class:`LocatedList`; both carry the line of the
node and of each key/item, so a problem deep inside a resource can name its file and line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tcpmesh.model.pickled import pickled_by_slots
from tcpmesh.model.problems import Problem, Severity

__all__ = [
    "MAX_DOCUMENTS_PER_FILE",
    "MAX_FILE_BYTES",
    "MAX_MAPPING_KEYS",
    "Document",
    "LocatedDict",
    "LocatedList",
    "decode_utf8",
    "load_documents",
    "load_yaml_text",
    "read_yaml_file",
    "yaml_files",
    "yaml_files_under",
]

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DOCUMENTS_PER_FILE = 10_000
# Bounds the work a hostile file can cause through aliases (each alias re-walks its target).
_MAX_NODES = 2_000_000
# No resource has a mapping this large; refusing before construction keeps a file of 100 000 keys cheap.
MAX_MAPPING_KEYS = 10_000


class LocatedDict(dict[Any, Any]):
    """A mapping that knows its own line and the line of each of its keys."""

    line: int
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _DuplicateKeyError(yaml.MarkedYAMLError):
    pass


# libyaml's parser when available (several times faster); the constructors below are the same either way.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    if len(node.value) > MAX_MAPPING_KEYS:
        raise yaml.constructor.ConstructorError(
            None, None, f"a mapping of {len(node.value)} keys (at most {MAX_MAPPING_KEYS})", node.start_mark
        )
    loader.flatten_mapping(node)
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError as exc:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
            ) from exc
        if key in result:
            raise _DuplicateKeyError(
                "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a file; ``data`` is whatever the document holds (usually a LocatedDict)."""

    file: str
    index: int
    line: int
    data: Any
    start: int = 0
    """Character offsets of the document's content in its file, so one document can be rewritten alone."""
    end: int = 0


def _count_nodes(node: yaml.Node, budget: list[int]) -> None:
    stack: list[yaml.Node] = [node]
    while stack:
        current = stack.pop()
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError("document too large or too deeply aliased")
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.append(key)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def load_yaml_text(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Parse every document of ``text``; a syntax error becomes a Problem with its line."""
    documents: list[Document] = []
    loader = _Loader(text)
    budget = [_MAX_NODES]
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node() said there is one
                break
            _count_nodes(node, budget)
            data = loader.construct_document(node)
            if data is not None:
                documents.append(
                    Document(file, index, node.start_mark.line + 1, data, node.start_mark.index, node.end_mark.index)
                )
            index += 1
            if index > MAX_DOCUMENTS_PER_FILE:
                return [], [Problem(file=file, message=f"more than {MAX_DOCUMENTS_PER_FILE} documents")]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        reason = exc.problem or exc.context or "invalid YAML"
        return [], [Problem(file=file, line=line, message=f"invalid YAML: {reason}")]
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        return [], [Problem(file=file, message=f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    return documents, []


def yaml_files(path: Path, skipped: list[Problem] | None = None) -> Iterator[Path]:
    """The YAML files a path names: itself, or the *.yaml / *.yml regular files of a directory, sorted.

    In a directory only regular files directly inside it count: symlinks (which could point anywhere) and
    subdirectories are skipped, and reported in `skipped` when given.
    """
    if not path.is_dir():
        yield path
        return
    for child in sorted(path.iterdir()):
        if child.suffix not in (".yaml", ".yml") or child.name.startswith("."):
            continue
        if child.is_symlink() or not stat.S_ISREG(child.lstat().st_mode):
            if skipped is not None:
                what = "a symlink" if child.is_symlink() else "not a regular file"
                skipped.append(Problem(file=str(child), message=f"skipped: {what}", severity=Severity.WARNING))
            continue
        yield child


def decode_utf8(data: bytes, name: str) -> tuple[str | None, Problem | None]:
    """``data`` as text, or a problem naming ``name`` and the line and byte offset of the first bad byte."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex()
        return None, Problem(file=name, line=line, message=f"not UTF-8 text (byte 0x{bad} at offset {exc.start})")


def _read_limited(file: Path, name: str, problems: list[Problem]) -> str | None:
    # O_NOFOLLOW: a file swapped for a symlink after listing is refused rather than followed.
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_FILE_BYTES:
            problems.append(Problem(file=name, message=f"file is {size} bytes; the limit is {MAX_FILE_BYTES}"))
            return None
        text, problem = decode_utf8(handle.read(MAX_FILE_BYTES + 1), name)
        if problem is not None:
            problems.append(problem)
        return text


def read_yaml_file(file: Path) -> tuple[list[Document], list[Problem]]:
    """The documents of one file, within the size limit; unreadable or non-UTF-8 files become problems."""
    name = str(file)
    problems: list[Problem] = []
    try:
        text = _read_limited(file, name, problems)
    except OSError as exc:
        return [], [Problem(file=name, message=f"cannot read: {exc.strerror or exc}")]
    if text is None:
        return [], problems
    return load_yaml_text(text, name)


def yaml_files_under(paths: Sequence[Path], problems: list[Problem]) -> Iterator[Path]:
    """The YAML files of ``paths`` (files or directories, not recursive); a missing path is a problem."""
    for path in paths:
        if not path.exists():
            problems.append(Problem(file=str(path), message="no such file or directory"))
            continue
        yield from yaml_files(path, problems)


def load_documents(paths: list[Path]) -> tuple[list[Document], list[Problem]]:
    """Load every YAML document under ``paths`` (files or directories, not recursive)."""
    documents: list[Document] = []
    problems: list[Problem] = []
    for file in yaml_files_under(paths, problems):
        docs, errs = read_yaml_file(file)
        documents.extend(docs)
        problems.extend(errs)
    return documents, problems
