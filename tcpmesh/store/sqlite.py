"""The embedded store: one SQLite database (stdlib ``sqlite3``, WAL) under the state dir.

Every commit is one ``BEGIN IMMEDIATE`` transaction, so a ``kill -9`` at any moment leaves either the whole
change or none of it, and nothing beside the database (SQLite's own ``-wal``/``-shm`` files are its journal).
A writer takes an exclusive lock on the state dir, so two processes never serve (and change) one store.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from pathlib import Path

from tcpmesh.store.backend import Key, Record, StaleRevision

__all__ = ["DB_NAME", "LOCK_NAME", "SqliteBackend", "StateDirLocked", "lock_state_dir"]

log = logging.getLogger(__name__)

DB_NAME = "store.db"
LOCK_NAME = "store.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    body TEXT NOT NULL, source TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL, create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, namespace, name)
);
CREATE INDEX IF NOT EXISTS resources_by_mod_revision ON resources (mod_revision);
CREATE TABLE IF NOT EXISTS deleted (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, revision INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deleted_by_revision ON deleted (revision);
INSERT OR IGNORE INTO meta (key, value) SELECT 'deleted_since', value FROM meta WHERE key = 'revision';
CREATE TABLE IF NOT EXISTS parsed (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
"""
# `parsed` is the parsed cache (store/parsed.py): derived data, never the truth, so it is written outside the
# changes (no revision) and an entry that does not match its record's body is not used.
_DELETED_KEPT = 1_000
"""Revisions of deletions kept for `changes_since`; a reader further behind reads everything again."""
_COLUMNS = "kind, namespace, name, body, source, owner, generation, create_revision, mod_revision, position"


class StateDirLocked(OSError):
    pass


def lock_state_dir(state_dir: Path, name: str = LOCK_NAME) -> int:
    """An exclusive, non-blocking lock on ``state_dir/name``; the fd holds it until closed (or the process dies).
    Raises StateDirLocked naming the holder's pid, having changed nothing."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StateDirLocked(
            f"{state_dir} is in use by another tcpmesh (pid {holder}); nothing was changed. "
            "Stop it, or give another --state-dir."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class SqliteBackend:
    def __init__(self, path: Path, *, lock: bool = True) -> None:
        """``lock``: this process writes; takes the state dir's lock. Without it the database is only read."""
        self.path = path
        self.location = f"sqlite://{path}"
        self.available = True
        self.error = ""
        self._lock_fd = lock_state_dir(path.parent) if lock else None
        self._mutex = threading.Lock()
        try:
            if lock:
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                with contextlib.suppress(OSError):
                    path.chmod(0o600)
            else:
                uri = f"file:{path}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
        except BaseException:
            self.close()
            raise

    def revision(self) -> int:
        with self._mutex:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0]) if row else 0

    def read_all(self) -> tuple[int, dict[Key, Record]]:
        with self._mutex:
            # One read transaction: the revision and the rows are of the same moment.
            self._db.execute("BEGIN")
            try:
                row = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM resources").fetchall()
            finally:
                self._db.execute("COMMIT")
        records = {(r[0], r[1], r[2]): Record(*r) for r in rows}
        return (int(row[0]) if row else 0), records

    def changes_since(self, revision: int) -> tuple[int, dict[Key, Record | None]] | None:
        """What changed after ``revision``: the records put since (by key) and None for each key deleted since;
        None when the deletions of that span are no longer kept (read everything instead). An edit then costs
        what it changed, not the size of the store."""
        with self._mutex, contextlib.suppress(sqlite3.OperationalError):  # a database of an older tcpmesh
            self._db.execute("BEGIN")
            try:
                current = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
                since = self._db.execute("SELECT value FROM meta WHERE key = 'deleted_since'").fetchone()
                if since is not None and revision < int(since[0]):
                    return None
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM resources WHERE mod_revision > ?", (revision,))
                puts = rows.fetchall()
                gone = self._db.execute(
                    "SELECT kind, namespace, name FROM deleted WHERE revision > ?", (revision,)
                ).fetchall()
            finally:
                self._db.execute("COMMIT")
            changed: dict[Key, Record | None] = {(k, n, m): None for k, n, m in gone}
            changed.update(((r[0], r[1], r[2]), Record(*r)) for r in puts)  # present now: the table is the truth
            return (int(current[0]) if current else 0), changed
        return None

    def commit(self, base_revision: int, puts: list[Record], deletes: list[Key]) -> int:
        with self._mutex:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                current = int(db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0])
                if current != base_revision:
                    raise StaleRevision(f"store is at revision {current}, not {base_revision}")
                revision = current + 1
                for key in deletes:
                    db.execute("DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?", key)
                    db.execute("DELETE FROM parsed WHERE kind = ? AND namespace = ? AND name = ?", key)
                    db.execute("INSERT INTO deleted (kind, namespace, name, revision) VALUES (?, ?, ?, ?)",
                               (*key, revision))  # fmt: skip
                if deletes:
                    horizon = revision - _DELETED_KEPT
                    db.execute("DELETE FROM deleted WHERE revision <= ?", (horizon,))
                    db.execute("UPDATE meta SET value = MAX(value, ?) WHERE key = 'deleted_since'", (horizon,))
                for r in puts:
                    db.execute(
                        f"INSERT OR REPLACE INTO resources ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (r.kind, r.namespace, r.name, r.body, r.source, r.owner, r.generation,
                         r.create_revision or revision, revision, r.position),
                    )  # fmt: skip
                db.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (revision,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return revision

    def parsed_entries(self) -> dict[Key, tuple[str, bytes]]:
        """The parsed cache: per record key, the entry's key and bytes (empty for a database of an older
        tcpmesh opened read-only)."""
        with self._mutex, contextlib.suppress(sqlite3.OperationalError):
            rows = self._db.execute("SELECT kind, namespace, name, key, blob FROM parsed").fetchall()
            return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}
        return {}

    def put_parsed(self, entries: list[tuple[Key, str, bytes]]) -> None:
        """Write parsed-cache entries (one transaction, no revision: nothing the store holds changes). Only a
        writer writes them; a failure is logged and costs the next start a parse, nothing else."""
        if self._lock_fd is None or not entries:
            return
        with self._mutex:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany(
                        "INSERT OR REPLACE INTO parsed (kind, namespace, name, key, blob) VALUES (?, ?, ?, ?, ?)",
                        [(*k, key, blob) for k, key, blob in entries],
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                log.warning("could not write the parsed cache (%s); the next start parses these records again", exc)

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
