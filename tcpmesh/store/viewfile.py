"""The store's parsed view, saved in the state dir when a server stops: the next start takes the parse of every
unchanged record from one file.

At 10 000 services a start spent ~0.6 s of its store read unpickling the 50 001 entries of the per-record parsed
cache (parsed.py) one by one and checking each entry's key. This file holds every record's parse beside the
record's term (view.py: a digest of every input of the parse and of its place), pickled a few thousand records
to a frame, so each frame names a class or a repeated string once. A record whose term matches takes its parse
from here; any other is parsed as before (its cache entry, else its YAML), so the file is never the truth, only
a head start. The unpickler admits the model's classes only (parsed.ModelUnpickler), the first frame names the
model's version, and the last holds the digest of all the others (framed_file.py): a damaged file, or one made
by other code, is ignored whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tcpmesh.framed_file import read_frames, remove_stale_writes, write_frames
from tcpmesh.model.config import Config
from tcpmesh.store.backend import Key
from tcpmesh.store.parsed import ModelUnpickler, Parsed
from tcpmesh.store.view import terms_digest

__all__ = ["VIEW_FILE", "SavedParse", "ViewFile"]

log = logging.getLogger(__name__)

VIEW_FILE = "parsed-view.bin"
"""Its name in the state directory."""
MAGIC = b"tcpmesh parsed view 1\n"
RECORDS_PER_FRAME = 5_000

SavedParse = dict[Key, tuple[int, Parsed]]
"""Per record key: the record's term when it was parsed, and its parse."""

SavedRecord = tuple[Key, int, Parsed]


class ViewFile:
    """The saved parse at `path` (written whole and atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, version: str) -> SavedParse:
        """What was saved by the model of `version`; empty when there is no such file, or it is of another
        version, or damaged."""
        remove_stale_writes(self.path)
        found: dict[tuple[str, str], Any] = {}
        try:
            with self.path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                return _read(read_frames(f, MAGIC, size, lambda b: ModelUnpickler(b, found)), version)
        except FileNotFoundError:
            return {}
        except Exception as exc:  # whatever is wrong with a cache (damage, bit rot, not ours): parse instead
            log.warning("ignoring the saved parsed view %s: %s: %s", self.path, type(exc).__name__, exc)
            return {}

    def config(self, version: str) -> tuple[Config, str] | None:
        """The Config of the saved view and the view's digest, from this file alone (no record is read): what
        the translation worker starts from while the serving process reads the store, trusted only once the
        serving process's key of the records says it is theirs (publish_worker.py, "adopt")."""
        saved = self.read(version)
        if not saved:
            return None
        config = Config.of(res for _, (resources, _) in saved.values() for res in resources)
        return config, terms_digest(sum(term for term, _ in saved.values()))

    def write(self, version: str, records: Iterable[SavedRecord]) -> None:
        """Replace the file with `records`, parsed by the model of `version`."""
        write_frames(self.path, MAGIC, _frames(version, records))


def _frames(version: str, records: Iterable[SavedRecord]) -> Iterator[tuple[Any, ...]]:
    yield ("version", version)
    chunk: list[SavedRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == RECORDS_PER_FRAME:
            yield ("records", chunk)
            chunk = []
    if chunk:
        yield ("records", chunk)


def _is_parse(value: Any) -> bool:
    return type(value) is tuple and len(value) == 2 and type(value[0]) is list and type(value[1]) is list


def _read(frames: Iterator[Any], version: str) -> SavedParse:
    out: SavedParse = {}
    versioned = False
    for frame in frames:
        if not versioned:
            if frame[0] != "version":
                raise ValueError("the first frame is not the version")
            if frame[1] != version:
                log.info("the saved parsed view is of another model: reading the records' own cache")
                return {}
            versioned = True
        elif frame[0] == "records":
            # The shape only: the digest says the file is as written, the version frame by which model, and the
            # unpickler admitted the model's classes alone (checking each resource as a cache entry is would
            # cost ~0.06 s of 50 000).
            for key, term, parsed in frame[1]:
                if not (type(key) is tuple and len(key) == 3 and type(term) is int and _is_parse(parsed)):
                    raise ValueError("a record is not a key, a term and a parse")
                out[key] = (term, parsed)
        else:
            raise ValueError(f"unknown frame {frame[0]!r}")
    if not versioned:
        raise ValueError("no version frame")
    return out
