"""The state dir's cache files: a magic line, then length-prefixed pickled frames, the last one a digest of all
the others. Written whole and atomically (a crash leaves the old file or the new one), owner-only, each under a
name of its own while written (two replicas may share a state dir). Used by saved_snapshots.py and
store/viewfile.py; what a frame may hold is the reader's unpickler's business.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["TMP_SUFFIX", "read_frames", "remove_stale_writes", "write_frames"]

TMP_SUFFIX = ".tmp"
STALE_WRITE_S = 3600.0
_LENGTH = struct.Struct(">Q")


def write_frames(path: Path, magic: bytes, frames: Iterable[Any]) -> None:
    """Replace `path` with `magic` and `frames` (each pickled on its own: keep them small, and a write never
    holds the GIL for long)."""
    digest = hashlib.blake2b(digest_size=32)
    # mkstemp's 0600, as the store is: both caches hold SDS secrets (private keys).
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=TMP_SUFFIX)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(magic)
            for frame in frames:
                data = pickle.dumps(frame, pickle.HIGHEST_PROTOCOL)
                digest.update(data)
                f.write(_LENGTH.pack(len(data)) + data)
            end = pickle.dumps(("end", digest.hexdigest()), pickle.HIGHEST_PROTOCOL)
            f.write(_LENGTH.pack(len(end)) + end)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_frames(
    f: io.BufferedReader, magic: bytes, size: int, unpickler: Callable[[io.BytesIO], pickle.Unpickler]
) -> Iterator[Any]:
    """The frames of an open file of `size` bytes, the "end" frame excluded. Raises on any damage: trust what
    was read only once the iteration has ended normally (the digest is checked last)."""
    if f.read(len(magic)) != magic:
        raise ValueError("not a file of this kind")
    left = size - len(magic)
    digest = hashlib.blake2b(digest_size=32)
    while True:
        head = f.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            raise EOFError("truncated")
        (length,) = _LENGTH.unpack(head)
        left -= _LENGTH.size + length
        if left < 0:
            raise ValueError("a frame is longer than the file")
        data = f.read(length)
        frame = unpickler(io.BytesIO(data)).load()
        if isinstance(frame, tuple) and frame and frame[0] == "end":
            if frame[1:] != (digest.hexdigest(),):
                raise ValueError("its digest does not match its content")
            return
        digest.update(data)
        yield frame


def remove_stale_writes(path: Path) -> None:
    """Files of writes of `path` cut short by a crash (an hour old: not another replica's write in progress)."""
    for tmp in path.parent.glob(path.name + ".*" + TMP_SUFFIX):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > STALE_WRITE_S:
                tmp.unlink()
