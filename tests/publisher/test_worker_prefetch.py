"""The translation worker process reads the store itself at start (`prefetch`), beside the serving process's
own read; the first publish of that same content then sends no resource, and anything else is sent as before.
A real SQLite store and a real worker process; the frames are counted by a subclass in the test."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tcpmesh.model.config import Config
from tcpmesh.publish_worker import ProcessWorker
from tcpmesh.store import ConfigStore, import_paths, open_store, store_reader
from tcpmesh.translation import Translations
from tcpmesh.translator import Proxy, TranslateOptions
from tcpmesh.translator.incremental import IncrementalTranslator

from .test_publisher import ROOT, V2

GROUP = ("gateway", "istio-system", ())


class CountingWorker(ProcessWorker):
    """Counts the config resources sent to the child in "new" frames."""

    sent_resources = 0

    def _send(self, frame: tuple[Any, ...]) -> None:
        if frame[0] == "new":
            self.sent_resources += len(frame[2])
        super()._send(frame)


def _store(tmp_path: Path) -> ConfigStore:
    store = open_store(None, tmp_path / "state")
    assert import_paths(store, [ROOT / "samples" / "tcp-echo"]).ok
    return store


def _config(tmp_path: Path) -> Config:
    """The store's config, the store closed again (for tests of `Translations` alone)."""
    store = _store(tmp_path)
    try:
        return store.load_keyed()[0]
    finally:
        store.close()


def _workers() -> tuple[CountingWorker, CountingWorker]:
    """Two workers for the same options: one sent the config, one that prefetches it."""
    options = TranslateOptions(inline_weights=True)
    return CountingWorker(options, IncrementalTranslator, "x"), CountingWorker(options, IncrementalTranslator, "x")


def _translated(worker: ProcessWorker) -> dict[str, dict[str, str]]:
    outcome = worker.add(GROUP, Proxy.gateway())
    assert not outcome.problems, outcome.problems
    snapshot = outcome.snapshots[GROUP]
    return {t: {n: e.version for n, e in ts.entries.items()} for t, ts in snapshot.items()}


@pytest.mark.parametrize("between", ["nothing", "an apply"])
def test_a_prefetched_config_is_not_sent_and_translates_the_same(tmp_path: Path, between: str) -> None:
    store = _store(tmp_path)
    reader = store_reader(store)
    assert reader is not None
    plain, prefetching = _workers()
    try:
        config, problems, key = store.load_keyed()
        if between == "an apply":  # the store moved on before the worker read it: its read is not used
            assert store.apply(V2, source="tcp-echo-all-v1.yaml").ok
        assert not problems
        prefetching.prefetch(reader)
        assert not prefetching.publish(config, key).problems
        assert not plain.publish(config, key).problems
        assert plain.sent_resources == len(config)
        assert prefetching.sent_resources == (0 if between == "nothing" else len(config))
        assert _translated(prefetching) == _translated(plain)
        # Later edits are sent as diffs from the prefetched objects' positions, as from sent ones.
        if between == "nothing":
            assert store.apply(V2, source="tcp-echo-all-v1.yaml").ok
        edited, _, key = store.load_keyed()  # the store holds V2 now, the workers the first config
        for worker in (plain, prefetching):
            worker.sent_resources = 0
            outcome = worker.publish(edited, key)
            assert not outcome.problems
            assert 0 < worker.sent_resources < len(edited)
        assert _translated(prefetching) == _translated(plain)
    finally:
        plain.close()
        prefetching.close()
        store.close()


def _forkservers() -> list[int]:
    """This process's children that are multiprocessing's forkserver."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # not a process (/proc/net…) or one gone meanwhile
            continue
        if int(stat[1]) == os.getpid() and stat[0] != "Z" and b"multiprocessing.forkserver" in cmdline:
            found.append(int(entry.name))
    return found


def test_the_forkserver_stops_with_the_last_worker_closed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    config, _, key = store.load_keyed()
    workers = [ProcessWorker(TranslateOptions(), IncrementalTranslator, str(tmp_path)) for _ in range(2)]
    try:
        for worker in workers:
            assert not worker.publish(config, key).problems
        assert _forkservers()
        workers[0].close()  # the other worker still holds the forkserver's pipe: it keeps running
        assert _forkservers()
    finally:
        for worker in workers:
            worker.close()
    assert not _forkservers()  # waited for, not left to exit after this process


def _saved_store(tmp_path: Path) -> ConfigStore:
    """A server's store (it reads and saves the parsed view), stopped once with the view saved."""
    store = open_store(None, tmp_path / "state", view_file=True)
    assert import_paths(store, [ROOT / "samples" / "tcp-echo"]).ok
    store.load()
    store.save_view()
    return store


@pytest.mark.parametrize("between", ["nothing", "an apply"])
def test_the_worker_starts_from_the_saved_view_only_when_it_is_the_stores(tmp_path: Path, between: str) -> None:
    store = _saved_store(tmp_path)
    reader = store_reader(store)
    assert reader is not None
    assert reader.saved_config() is not None
    if between == "an apply":  # applied after the view was saved (while no server ran): the file is stale
        assert store.apply(V2, source="tcp-echo-all-v1.yaml").ok
    config, _, key = store.load_keyed()
    if between == "nothing":  # the worker cannot read the store now: only the saved view gives it the config
        (tmp_path / "state" / "store.db").rename(tmp_path / "state" / "moved.db")
    plain, prefetching = _workers()
    try:
        prefetching.prefetch(reader)
        assert not prefetching.publish(config, key).problems
        assert not plain.publish(config, key).problems
        # Either way nothing is sent: a stale file makes the worker read the store itself.
        assert prefetching.sent_resources == 0
        assert _translated(prefetching) == _translated(plain)
    finally:
        plain.close()
        prefetching.close()
        store.close()


@pytest.mark.parametrize("between", ["nothing", "an apply"])
def test_a_group_prepared_before_the_first_publish_is_published_by_it(tmp_path: Path, between: str) -> None:
    store = _saved_store(tmp_path)
    reader = store_reader(store)
    assert reader is not None
    if between == "an apply":  # the prepared translation is then for another config than the one published
        assert store.apply(V2, source="tcp-echo-all-v1.yaml").ok
    config, _, key = store.load_keyed()
    plain, prefetching = _workers()
    try:
        prefetching.prefetch(reader)
        prefetching.prepare(GROUP, Proxy.gateway())
        outcome = prefetching.publish(config, key)
        assert not outcome.problems
        assert set(outcome.snapshots) == {GROUP}
        assert GROUP in outcome.fresh
        # The prepared snapshot came type by type while it was built; the publish sent it again only when it was
        # for another config (the view was stale: the publish then translated the store's).
        assert outcome.staged == ({GROUP} if between == "nothing" else set())
        assert not plain.publish(config, key).problems
        published = {t: {n: e.version for n, e in ts.entries.items()} for t, ts in outcome.snapshots[GROUP].items()}
        assert published == _translated(plain)
        assert _translated(prefetching) == published  # the server's own add of the group: the same snapshot
    finally:
        plain.close()
        prefetching.close()
        store.close()


class Modes(IncrementalTranslator):
    """Records how each translation went (full, incremental, unchanged)."""

    modes: ClassVar[list[str]] = []

    def advance(self, config: Config) -> None:
        super().advance(config)
        self.modes.append(self.changes.mode)


def test_publishing_the_prepared_config_translates_nothing_again(tmp_path: Path) -> None:
    config = _config(tmp_path)
    Modes.modes = []
    translations = Translations(TranslateOptions(), Modes, "x", diffs=True)
    translations.prepare(GROUP, Proxy.gateway(), config)
    assert Modes.modes == ["full"]
    outcome = translations.publish(config)
    assert Modes.modes == ["full", "unchanged"]
    assert set(outcome.patches) == {GROUP}
    assert outcome.fresh == {GROUP}


def test_a_staged_snapshot_is_the_published_one_and_its_publish_carries_no_patch(tmp_path: Path) -> None:
    config = _config(tmp_path)
    staged: dict[str, Any] = {}
    translations = Translations(TranslateOptions(), IncrementalTranslator, "x", diffs=True)
    assert translations.prepare(GROUP, Proxy.gateway(), config, lambda type_url, ts: staged.setdefault(type_url, ts))
    outcome = translations.publish(config)
    assert outcome.staged == {GROUP}
    assert outcome.patches[GROUP] == {}  # the other side has it: staged
    plain = Translations(TranslateOptions(), IncrementalTranslator, "x")
    plain.add(GROUP, Proxy.gateway())
    published = plain.publish(config).snapshots[GROUP]
    assert {t: ts.version for t, ts in staged.items()} == {t: ts.version for t, ts in published.items()}
    # Translated again (the group asked again) or released and prepared anew: never staged twice.
    assert translations.add(GROUP, Proxy.gateway()).staged == frozenset()


def test_a_snapshot_that_fails_its_check_is_staged_but_not_kept(tmp_path: Path) -> None:
    config = _config(tmp_path)
    types: list[str] = []
    translations = Translations(TranslateOptions(), Dangling, "x", diffs=True)
    assert not translations.prepare(GROUP, Proxy.gateway(), config, lambda type_url, ts: types.append(type_url))
    assert types  # sent while built, before the check said no
    outcome = translations.publish(config)
    assert outcome.problems
    assert outcome.staged == frozenset()


class Dangling(IncrementalTranslator):
    """Names a cluster in a listener that no cluster is: the snapshot check rejects it."""

    def update(self, config: Config) -> Any:
        resources = super().update(config)
        listener = resources.listeners[0]
        refs = {**resources.references}
        refs["listeners"] = {**refs.get("listeners", {}), listener.name: {"clusters": frozenset({"nowhere"})}}
        return dataclasses.replace(resources, references=refs)


def test_a_worker_killed_while_it_stages_is_restarted_and_the_publish_goes_through(tmp_path: Path) -> None:
    store = _saved_store(tmp_path)
    reader = store_reader(store)
    assert reader is not None
    config, _, key = store.load_keyed()
    plain, prefetching = _workers()
    try:
        prefetching.prefetch(reader)
        prefetching.prepare(GROUP, Proxy.gateway())
        proc = prefetching._proc
        assert proc is not None
        proc.kill()  # mid-staging or just after: the reader sees the end of the pipe either way
        outcome = prefetching.publish(config, key)
        assert not outcome.problems
        assert outcome.staged == frozenset()  # a new worker: nothing of the dead one's is served
        assert prefetching._proc is not proc
        assert not plain.publish(config, key).problems
        assert _translated(prefetching) == _translated(plain)
    finally:
        plain.close()
        prefetching.close()
        store.close()
