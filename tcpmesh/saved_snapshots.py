"""The last published snapshots, saved beside the store so a restart serves them before it has translated.

A control plane that restarts at 10 000 services spends seconds translating before its first proxy is served
(docs/benchmarks.md, start). What it served before the restart is the translation of the same config when
nothing changed meanwhile: the file holds each proxy group's published snapshot (names, versions, bytes and
references, as the translation worker sends them) under a key naming everything the translation depended on:
the store's content (its records' digest and the model's version), the translating code, the options and the
translator. On start the publisher serves the file's snapshots only if the key is the one it would compute now,
then translates as usual and publishes the result, which is the same snapshot unless something the key does not
name has changed (proxies see no push then). Anything wrong with the file (missing, another key, truncated,
corrupt, not ours) means a normal start: the file is a cache, never the truth.

The file is framed_file.py's: pickled frames of builtin values only (the unpickler refuses every class), each
small so that writing never holds the GIL for long, with a digest of all of them in the last frame.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import pickle
import sys
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcpmesh.framed_file import read_frames, remove_stale_writes, write_frames
from tcpmesh.xds.cache import Snapshot, TypePatch, WireEntry, diff_types

__all__ = ["SNAPSHOT_FILE", "SavedGroup", "SnapshotFile", "code_version"]

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshots.bin"
"""Its name in the state directory."""
MAGIC = b"tcpmesh snapshots 1\n"
ENTRIES_PER_FRAME = 2_000


def code_version() -> str:
    """A digest of the package's code and of the interpreter and protobuf it runs on: the translation's code."""
    import google.protobuf

    root = Path(__file__).resolve().parent
    digest = hashlib.blake2b(digest_size=16)
    try:
        protos = importlib.metadata.version("xds-protos")  # the descriptors the bytes are serialised from
    except importlib.metadata.PackageNotFoundError:
        protos = "?"
    digest.update(f"{sys.version}\0{google.protobuf.__version__}\0{protos}\0".encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class SavedGroup:
    """One proxy group's saved snapshot: the proxy it was translated for (role, id, namespace, labels, ip) and
    every type in full."""

    proxy: tuple[Any, ...]
    types: Mapping[str, tuple[WireEntry, ...]]

    @staticmethod
    def of(proxy: tuple[Any, ...], snapshot: Snapshot) -> SavedGroup:
        return SavedGroup(proxy, {t: p.put for t, p in diff_types(None, snapshot).items()})

    def patch(self) -> dict[str, TypePatch]:
        """The snapshot as a patch of nothing (SnapshotCache.apply)."""
        return {t: TypePatch(put, (), True) for t, put in self.types.items()}


class _BuiltinsOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name}: a snapshot file holds builtin values only")


class SnapshotFile:
    """The saved snapshots at `path` (written whole and atomically; read only under the key they were saved)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, key: str) -> dict[Hashable, SavedGroup] | None:
        """The groups saved under `key`; None when there is no such file, or it is for another key, or broken."""
        remove_stale_writes(self.path)
        try:
            with self.path.open("rb") as f:
                return _read(read_frames(f, MAGIC, os.fstat(f.fileno()).st_size, _BuiltinsOnly), key)
        except FileNotFoundError:
            return None
        except Exception as exc:  # whatever is wrong with a cache (damage, bit rot, not ours): translate instead
            log.warning("ignoring the saved snapshots %s: %s: %s", self.path, type(exc).__name__, exc)
            return None

    def write(self, key: str, groups: Mapping[Hashable, SavedGroup]) -> None:
        """Replace the file with `groups` under `key` (a crash leaves the old file or the new one, whole)."""
        write_frames(self.path, MAGIC, _frames(key, groups))


def _frames(key: str, groups: Mapping[Hashable, SavedGroup]) -> Iterator[tuple[Any, ...]]:
    yield ("key", key)
    for n, (group, saved) in enumerate(groups.items()):
        yield ("group", n, group, saved.proxy)
        for type_url, entries in saved.types.items():
            for start in range(0, max(len(entries), 1), ENTRIES_PER_FRAME):
                yield ("put", n, type_url, entries[start : start + ENTRIES_PER_FRAME])


def _read(frames: Iterator[Any], key: str) -> dict[Hashable, SavedGroup] | None:
    keys: list[Hashable] = []
    proxies: list[tuple[Any, ...]] = []
    types: list[dict[str, list[WireEntry]]] = []
    keyed = False
    for frame in frames:
        if not keyed and frame[0] != "key":
            raise ValueError("the first frame is not the key")
        if frame[0] == "key":
            keyed = True
            if frame[1] != key:
                log.info("the saved snapshots are of another config or code: translating first")
                return None
        elif frame[0] == "group":
            keys.append(frame[2])
            proxies.append(tuple(frame[3]))
            types.append({})
        elif frame[0] == "put":
            types[frame[1]].setdefault(frame[2], []).extend(frame[3])
        else:
            raise ValueError(f"unknown frame {frame[0]!r}")
    if not keyed:
        raise ValueError("no key frame")
    return {
        group: SavedGroup(proxy, {t: tuple(entries) for t, entries in by_type.items()})
        for group, proxy, by_type in zip(keys, proxies, types, strict=True)
    }
