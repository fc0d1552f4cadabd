"""What a store backend keeps: records keyed by kind/namespace/name, and one revision for the whole store.

A backend does no validation; :class:`tcpmesh.store.core.ConfigStore` validates and then commits through
``commit``, which fails with :class:`StaleRevision` when anything changed since the revision it read
(optimistic concurrency over the whole store, so a change is validated against exactly the state it replaces).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Backend", "ChangeTooLarge", "Key", "Record", "StaleRevision", "StoreUnavailable"]

Key = tuple[str, str, str]
"""(kind, namespace, name)."""


@dataclass(frozen=True, slots=True)
class Record:
    kind: str
    namespace: str
    name: str
    body: str
    """The resource's YAML document as written (comments included)."""
    source: str
    """Where it came from: the file the user applied, or the config-directory file that owns it."""
    owner: str = ""
    """Non-empty when a config-directory file owns the resource: the API may not change it."""
    generation: int = 1
    create_revision: int = 0
    mod_revision: int = 0
    """The resourceVersion: the store revision that last changed it."""
    position: int = 0
    """Index among the resources of the change that created it (creation order within one revision)."""

    @property
    def key(self) -> Key:
        return (self.kind, self.namespace, self.name)


class StaleRevision(Exception):
    """The store changed since the revision a commit was based on; read again and retry."""


class ChangeTooLarge(Exception):
    """The backend cannot commit this many changes in one transaction (etcd's --max-txn-ops); nothing changed."""


class StoreUnavailable(Exception):
    """The backend cannot be reached (etcd down); the message says which and why."""


class Backend(Protocol):
    location: str
    available: bool
    """False while the backend cannot be reached (reads serve the last snapshot; commits fail)."""
    error: str

    def revision(self) -> int: ...

    def read_all(self) -> tuple[int, dict[Key, Record]]: ...

    def commit(self, base_revision: int, puts: list[Record], deletes: list[Key]) -> int:
        """Write all of ``puts`` and ``deletes`` in one transaction at revision base+1, or raise StaleRevision.
        ``create_revision``/``mod_revision`` of ``puts`` are filled in by the backend (0 means "new")."""
        ...

    def close(self) -> None: ...
