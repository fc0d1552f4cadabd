"""``--config-dir``: a directory of YAML as a one-way input to the store (GitOps). tcpmesh never writes there.

Each file is one transaction: its resources, validated as a whole against the resulting config, replace what
the file put in the store before; a file removed from the directory removes its resources. A file is read only
once it has stopped changing for ``quiet`` seconds. Whatever cannot be read or is invalid — half-written,
vanished mid-read, unreadable, emptied — is reported (status, metrics, log) and the store keeps the file's last
good content, across restarts too. The store records each resource's owning file, so the API cannot change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

from tcpmesh.model.problems import Problem, Severity
from tcpmesh.model.yamlsource import MAX_FILE_BYTES, yaml_files
from tcpmesh.store.core import ConfigStore

__all__ = ["DirectoryInput"]

log = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None
"""(inode, size, mtime_ns) of a file, None when it is absent."""


def _read(path: Path) -> str:
    # O_NOFOLLOW: a file swapped for a symlink after listing is refused rather than followed.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")
        return handle.read(MAX_FILE_BYTES + 1).decode("utf-8")


class DirectoryInput:
    def __init__(self, directory: Path, store: ConfigStore, quiet: float = 0.2) -> None:
        self.directory = directory.resolve()
        self.store = store
        self.quiet = quiet
        self.problems: dict[str, list[Problem]] = {}
        """Per file (or the directory itself): why its current content is not in the store."""
        self._done: dict[str, Signature] = {}
        self._pending: dict[str, tuple[Signature, float]] = {}
        store.input_problems = self.problems

    @property
    def rejected_files(self) -> int:
        return sum(1 for problems in self.problems.values() if any(p.is_error for p in problems))

    def _listing(self) -> dict[str, Signature] | None:
        if not self.directory.is_dir():
            self._report(str(self.directory), [Problem(file=str(self.directory), message="no such directory")])
            return None
        skipped: list[Problem] = []
        try:
            files = list(yaml_files(self.directory, skipped))
        except OSError as exc:  # a file vanished between listing and lstat: list again next time
            self._report(str(self.directory), [Problem(file=str(self.directory), message=f"cannot list: {exc}")])
            return None
        self.problems.pop(str(self.directory), None)
        out: dict[str, Signature] = {}
        for file in files:
            try:
                st = file.lstat()
            except OSError:
                continue
            out[str(file)] = (st.st_ino, st.st_size, st.st_mtime_ns)
        for problem in skipped:
            self.problems[problem.file] = [problem]
        return out

    def scan(self, *, settle: bool = True) -> bool:
        """One pass over the directory; True when the store changed."""
        listing = self._listing()
        if listing is None:
            return False  # never remove anything because the directory itself is unreadable
        now = time.monotonic()
        owned = {r.owner for r in self.store.records() if r.owner.startswith(str(self.directory) + os.sep)}
        candidates: dict[str, Signature] = {name: None for name in owned | set(self._done)}
        candidates.update(listing)
        changed = False
        for name, sig in sorted(candidates.items()):
            if name in self._done and self._done[name] == sig:
                continue
            pending = self._pending.get(name)
            if settle and (pending is None or pending[0] != sig):
                self._pending[name] = (sig, now)
                continue
            if settle and pending is not None and now - pending[1] < self.quiet:
                continue
            self._pending.pop(name, None)
            changed |= self._sync(name, sig)
        return changed

    def _sync(self, name: str, sig: Signature) -> bool:
        if sig is None:
            result = self.store.change([], [], owner=name, replace_owned=True)
            self._done.pop(name, None)
            self.problems.pop(name, None)
            if not result.ok:
                self._report(name, result.problems)
                return False
            for line in result.lines:
                log.info("%s removed: %s", name, line)
            return bool(result.lines)
        self._done[name] = sig
        try:
            text = _read(Path(name))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._report(name, [Problem(file=name, message=f"cannot read: {reason}")])
            self._done.pop(name, None)  # vanished or unreadable: try again on the next pass
            return False
        inputs, problems = self.store.inputs(text, name)
        if not inputs and not any(p.is_error for p in problems):
            problems.append(
                Problem(file=name, message="no resources; kept its last good content (remove the file to delete it)")
            )
        if any(p.is_error for p in problems):
            self._report(name, problems)
            return False
        result = self.store.change(inputs, [], source=name, owner=name, replace_owned=True)
        if not result.ok:
            self._report(name, result.problems)
            return False
        self.problems.pop(name, None)
        if result.revision and any(not line.endswith(" unchanged") for line in result.lines):
            log.info("%s applied at revision %d: %s", name, result.revision, "; ".join(result.lines))
            return True
        return False

    def _report(self, name: str, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity is Severity.ERROR]
        if [str(p) for p in self.problems.get(name, [])] != [str(p) for p in errors]:
            for problem in errors:
                log.error("config dir: %s (the store keeps the last good content)", problem)
        self.problems[name] = errors

    async def run(self, stop: asyncio.Event, interval: float = 0.1) -> None:
        """Scan until stopped; nothing a file does ends this loop."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.scan)
            except Exception:
                log.exception("config dir scan failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
