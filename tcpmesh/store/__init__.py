"""The config store: SQLite embedded (the default, under the state dir); changes validated as a whole first."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from tcpmesh.model.config import Config
from tcpmesh.model.problems import Problem
from tcpmesh.model.yamlsource import yaml_files_under
from tcpmesh.store.backend import Backend, Key, Record, StaleRevision, StoreUnavailable
from tcpmesh.store.core import ApplyResult, ConfigStore, Input
from tcpmesh.store.kinds import KIND_ALIASES, kubectl_name, resolve_kind
from tcpmesh.store.parsed import model_version
from tcpmesh.store.sqlite import DB_NAME, SqliteBackend, StateDirLocked, lock_state_dir
from tcpmesh.store.viewfile import VIEW_FILE, ViewFile

__all__ = [
    "DB_NAME",
    "DEFAULT_STATE_DIR",
    "KIND_ALIASES",
    "ApplyResult",
    "Backend",
    "ConfigStore",
    "Input",
    "Key",
    "Record",
    "SqliteBackend",
    "StaleRevision",
    "StateDirLocked",
    "StoreReader",
    "StoreUnavailable",
    "import_paths",
    "kubectl_name",
    "lock_state_dir",
    "open_store",
    "resolve_kind",
    "store_reader",
]

DEFAULT_STATE_DIR = Path(".tcpmesh")


def open_store(
    url: str | None,
    state_dir: Path = DEFAULT_STATE_DIR,
    default_namespace: str = "default",
    *,
    max_resources: int | None = None,
    writer: bool = True,
    view_file: bool = False,
) -> ConfigStore:
    """The store a URL names: ``sqlite:///path/to/store.db``; none: SQLite in ``state_dir``.

    ``writer``: this process changes the store and takes the state dir's lock (refused when another holds it).
    ``view_file``: read the parsed view a server saved in ``state_dir`` at its stop, and save it with `save_view`
    (a server's start; store/viewfile.py).
    """
    backend: Backend
    if not url:
        backend = SqliteBackend(state_dir / DB_NAME, lock=writer)
    else:
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            if not parsed.path or parsed.netloc:
                raise ValueError(f"--store {url}: give an absolute path, sqlite:///path/to/store.db")
            path = Path(parsed.path)
            if path.is_dir():
                path = path / DB_NAME
            backend = SqliteBackend(path, lock=writer)
        elif parsed.scheme == "etcd":
            from tcpmesh.store.etcd import EtcdBackend

            backend = EtcdBackend(url)
        else:
            raise ValueError(f"--store {url}: unknown scheme {parsed.scheme!r}; use sqlite:///path or etcd://host:port")
    saved = ViewFile(state_dir / VIEW_FILE) if view_file else None
    return ConfigStore(backend, state_dir, default_namespace, max_resources=max_resources, view_file=saved)


def import_paths(store: ConfigStore, paths: Sequence[Path]) -> ApplyResult:
    """Apply the YAML files of ``paths`` (files or directories, such as an old config directory) as one change:
    all of it or, if anything is invalid, none of it."""
    inputs: list[Input] = []
    problems: list[Problem] = []
    for file in yaml_files_under(paths, problems):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:
            problems.append(Problem(file=str(file), message=f"cannot read: {exc}"))
            continue
        more, found = store.inputs(text, str(file))
        problems.extend(found)
        inputs.extend(dataclasses.replace(i, position=len(inputs) + n) for n, i in enumerate(more))
    result = ApplyResult(problems=problems)
    if not result.ok:
        return result
    return store.change(inputs, [], source="import", result=result)


@dataclasses.dataclass(frozen=True, slots=True)
class StoreReader:
    """How another process opens a SQLite store to read it (it pickles): the translation worker reads the
    store beside the serving process at start instead of being sent 50 000 resources (publish_worker.py)."""

    path: Path
    state_dir: Path
    default_namespace: str
    max_resources: int | None
    view_file: Path | None = None

    def saved_config(self) -> tuple[Config, str] | None:
        """The Config of the parsed view saved at the last stop and its `load_keyed` key, read from that file
        alone (None: there is none); it is the store's content only if the key is the store's."""
        if self.view_file is None:
            return None
        version = model_version()
        found = ViewFile(self.view_file).config(version)
        return (found[0], f"{version}-{found[1]}") if found is not None else None

    def open(self) -> ConfigStore:
        backend = SqliteBackend(self.path, lock=False)
        saved = ViewFile(self.view_file) if self.view_file is not None else None
        return ConfigStore(
            backend, self.state_dir, self.default_namespace, max_resources=self.max_resources, view_file=saved
        )


def store_reader(store: ConfigStore) -> StoreReader | None:
    """A `StoreReader` of `store`; None for a backend another process cannot simply open (etcd)."""
    backend = store.backend
    if not isinstance(backend, SqliteBackend):
        return None
    return StoreReader(backend.path, store.directory, store.default_namespace, store.max_resources, store.view_path)
