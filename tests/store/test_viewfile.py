"""The parsed view saved at a server's stop (store/viewfile.py): the next start takes every unchanged record's
parse from it, a changed record is parsed anew, and anything wrong with the file means the usual read."""

from __future__ import annotations

import os
import pickle
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports
from tcpmesh.store import ConfigStore, open_store, viewfile
from tcpmesh.store.parsed import model_version
from tcpmesh.store.view import record_term
from tcpmesh.store.viewfile import MAGIC, VIEW_FILE, ViewFile

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "tcp-echo"

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: default
spec:
  hosts: [svc.default.svc.cluster.local]
  tcp:
  - route:
    - destination: {{host: svc.default.svc.cluster.local}}
      weight: {weight}
"""
NAMES = ("a", "b", "c")


class Counted:
    """A server's store whose parses (YAML) and reads of the per-record cache are counted."""

    def __init__(self, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = open_store(None, state, view_file=True)
        self.parsed: list[str] = []
        self.entry_reads = 0
        parse, entries = self.store._parse_record, self.store.backend.parsed_entries  # type: ignore[attr-defined]

        def counted_parse(rec: object) -> object:
            self.parsed.append(rec.name)  # type: ignore[attr-defined]
            return parse(rec)  # type: ignore[arg-type]

        def counted_entries() -> object:
            self.entry_reads += 1
            return entries()

        monkeypatch.setattr(self.store, "_parse_record", counted_parse)
        monkeypatch.setattr(self.store.backend, "parsed_entries", counted_entries)

    def weights(self) -> dict[str, int]:
        config, problems = self.store.load()
        assert not [p for p in problems if p.is_error]
        return {vs.meta.name: vs.tcp[0].route[0].weight for vs in config.virtual_services}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state dir with three VirtualServices, served once and stopped (the view file saved, in two frames)."""
    monkeypatch.setattr(viewfile, "RECORDS_PER_FRAME", 2)
    state = tmp_path / "state"
    store = open_store(None, state, view_file=True)
    try:
        for name in NAMES:
            assert store.apply(VS.format(name=name, weight=10)).ok
        store.load()
        store.save_view()
    finally:
        store.close()
    return state


def test_a_restart_takes_every_parse_from_the_file(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stat.S_IMODE((state / VIEW_FILE).stat().st_mode) == 0o600  # it holds Secrets' keys too
    s = Counted(state, monkeypatch)
    try:
        assert s.weights() == dict.fromkeys(NAMES, 10)
        assert s.parsed == []
        assert s.entry_reads == 0
        mtime = (state / VIEW_FILE).stat().st_mtime_ns
        s.store.save_view()  # the file holds this view: nothing to write
        assert (state / VIEW_FILE).stat().st_mtime_ns == mtime
    finally:
        s.store.close()


def test_an_edit_while_stopped_parses_that_record_only(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = open_store(None, state)  # `tcpmesh apply` against the state dir while no server runs
    try:
        assert other.apply(VS.format(name="b", weight=90)).ok
    finally:
        other.close()
    s = Counted(state, monkeypatch)
    try:
        assert s.weights() == {"a": 10, "b": 90, "c": 10}
        assert s.parsed == ["b"]
        assert s.entry_reads == 1
        s.store.save_view()
    finally:
        s.store.close()
    s = Counted(state, monkeypatch)
    try:
        assert s.weights() == {"a": 10, "b": 90, "c": 10}
        assert s.parsed == []
        assert s.entry_reads == 0
    finally:
        s.store.close()


def test_a_live_edit_is_saved_at_the_stop(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Counted(state, monkeypatch)
    try:
        s.weights()
        assert s.store.apply(VS.format(name="c", weight=55)).ok
        assert s.weights()["c"] == 55
        s.store.save_view()
    finally:
        s.store.close()
    s = Counted(state, monkeypatch)
    try:
        assert s.weights() == {"a": 10, "b": 10, "c": 55}
        assert s.parsed == []
        assert s.entry_reads == 0
    finally:
        s.store.close()


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "a flipped byte":
        data[len(data) // 2] ^= 0x01
    elif how == "not ours":
        data[:4] = b"SQLi"
    elif how == "a class outside the model":
        frame = pickle.dumps(("version", os.system, "true"), pickle.HIGHEST_PROTOCOL)
        data = bytearray(MAGIC + len(frame).to_bytes(8, "big") + frame)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "a flipped byte", "not ours", "a class outside the model"])
def test_a_damaged_file_means_the_usual_read(
    state: Path, how: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _damage(state / VIEW_FILE, how)
    s = Counted(state, monkeypatch)
    try:
        assert s.weights() == dict.fromkeys(NAMES, 10)
        assert s.entry_reads == 1
        assert s.parsed == []
    finally:
        s.store.close()
    assert "ignoring the saved parsed view" in caplog.text


def test_a_file_of_another_model_is_not_used(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Counted(state, monkeypatch)
    try:
        s.weights()
        ViewFile(state / VIEW_FILE).write("another model", s.store._view.parses())  # type: ignore[union-attr]
    finally:
        s.store.close()
    s = Counted(state, monkeypatch)
    try:
        assert s.weights() == dict.fromkeys(NAMES, 10)
        assert s.entry_reads == 1
    finally:
        s.store.close()


def test_only_a_server_store_reads_or_writes_the_file(state: Path) -> None:
    (state / VIEW_FILE).unlink()
    store: ConfigStore = open_store(None, state)  # the CLI's: no view file
    try:
        store.load()
        store.save_view()
    finally:
        store.close()
    assert not (state / VIEW_FILE).exists()


@pytest.mark.timeout(120)
def test_serve_saves_the_view_when_it_stops(tmp_path: Path) -> None:
    ads, http = free_ports(2)
    state, ready = tmp_path / "state", tmp_path / "ready.json"
    cmd = [sys.executable, "-m", "tcpmesh", "serve", "--state-dir", str(state), "--seed", str(SAMPLE),
           "--ads-address", f"127.0.0.1:{ads}", "--http-address", f"127.0.0.1:{http}",
           "--ready-file", str(ready)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=60, what="serve to be ready")
        assert proc.poll() is None, proc.communicate()[1]
        assert not (state / VIEW_FILE).exists()  # written at the stop, not while serving
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    store = open_store(None, state)
    try:
        records = {r.key: record_term(r) for r in store.records()}
        saved = ViewFile(state / VIEW_FILE).read(model_version())
        assert records
        assert {k: term for k, (term, _) in saved.items()} == records
    finally:
        store.close()
