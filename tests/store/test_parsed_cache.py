"""The parsed cache across restarts: a start uses it only when it matches the record; otherwise the YAML."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tcpmesh.store import ConfigStore, open_store
from tcpmesh.store.parsed import decode

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
      weight: {weight}  # a comment the user keeps
"""


def _seed(state: Path) -> None:
    store = open_store(None, state)
    try:
        for name in ("a", "b"):
            assert store.apply(VS.format(name=name, weight=100)).ok
        store.load()
    finally:
        store.close()


def _entries(state: Path) -> dict[str, tuple[str, bytes]]:
    with sqlite3.connect(state / "store.db") as db:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT name, key, blob FROM parsed")}


def _weights(store: ConfigStore) -> dict[str, int]:
    config, problems = store.load()
    assert not [p for p in problems if p.is_error]
    return {vs.meta.name: vs.tcp[0].route[0].weight for vs in config.virtual_services}


def _restart(state: Path) -> tuple[ConfigStore, dict[str, int]]:
    store = open_store(None, state)
    return store, _weights(store)


def test_a_restart_serves_the_cached_parse_equal_to_the_yaml_parse(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _seed(state)
    entries = _entries(state)
    assert set(entries) == {"a", "b"}
    store = open_store(None, state)
    try:
        cached = store.load()[0]
        for rec in store.records():
            blob = entries[rec.name][1]
            assert decode(blob, *rec.key) == store._parse_record(rec)
        assert cached.virtual_services[0].meta.source.line == 1
        # What the user wrote is what `get -o yaml` shows.
        assert "# a comment the user keeps" in store.get("VirtualService", "a")[0].body
    finally:
        store.close()


def test_a_corrupt_or_foreign_entry_falls_back_to_the_yaml(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _seed(state)
    evil = b"\x80\x05cos\nsystem\n\x94."  # names a class outside the model: never unpickled
    with sqlite3.connect(state / "store.db") as db:
        (blob,) = db.execute("SELECT blob FROM parsed WHERE name = 'a'").fetchone()
        db.execute("UPDATE parsed SET blob = ? WHERE name = 'a'", (blob[:-9] + b"garbage!!",))
        db.execute("UPDATE parsed SET blob = ?, key = 'x' WHERE name = 'b'", (evil,))
    store, weights = _restart(state)
    try:
        assert weights == {"a": 100, "b": 100}
    finally:
        store.close()
    # The start wrote good entries in their place.
    entries = _entries(state)
    assert decode(entries["a"][1], "VirtualService", "default", "a") is not None
    assert decode(entries["b"][1], "VirtualService", "default", "b") is not None
    assert decode(evil, "VirtualService", "default", "b") is None


def test_an_entry_that_parses_but_is_of_another_body_is_not_used(tmp_path: Path) -> None:
    """A valid entry of another record (or of an older body) carries a key that does not match this body."""
    state = tmp_path / "state"
    _seed(state)
    with sqlite3.connect(state / "store.db") as db:
        # A writer that changed the body but not the cache (an older tcpmesh, or a crash in between).
        db.execute("UPDATE resources SET body = replace(body, 'weight: 100', 'weight: 7') WHERE name = 'a'")
    store, weights = _restart(state)
    try:
        assert weights == {"a": 7, "b": 100}
    finally:
        store.close()


def test_a_changed_record_is_parsed_again_and_its_entry_rewritten(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _seed(state)
    before = _entries(state)["a"]
    store = open_store(None, state)
    try:
        assert store.apply(VS.format(name="a", weight=42)).ok
        assert _weights(store) == {"a": 42, "b": 100}
    finally:
        store.close()
    assert _entries(state)["a"] != before
    store, weights = _restart(state)
    try:
        assert weights == {"a": 42, "b": 100}
        assert store.delete_keys([("VirtualService", "default", "b")]).ok
    finally:
        store.close()
    assert set(_entries(state)) == {"a"}
    store, weights = _restart(state)
    store.close()
    assert weights == {"a": 42}


def test_a_database_without_the_cache_is_read_from_the_yaml(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _seed(state)
    with sqlite3.connect(state / "store.db") as db:
        db.execute("DROP TABLE parsed")  # as an older tcpmesh left it
    reader = open_store(None, state, writer=False)
    try:
        assert _weights(reader) == {"a": 100, "b": 100}
    finally:
        reader.close()
    store, weights = _restart(state)
    store.close()
    assert weights == {"a": 100, "b": 100}
    assert set(_entries(state)) == {"a", "b"}


def test_every_kind_of_the_samples_is_served_from_its_entry(tmp_path: Path) -> None:
    """Gateway API kinds, Secrets and HTTP routes too: each record's entry decodes to what the YAML gives."""
    samples = Path(__file__).resolve().parents[2] / "samples"
    state = tmp_path / "state"
    store = open_store(None, state)
    try:
        for path in sorted(samples.glob("gateway-api-tcp-echo/*.yaml")) + sorted(samples.glob("tcp-echo/*.yaml")):
            assert store.apply(path.read_text(), str(path)).ok, path
        store.load()
    finally:
        store.close()
    with sqlite3.connect(state / "store.db") as db:
        entries = {(r[0], r[1], r[2]): r[3] for r in db.execute("SELECT kind, namespace, name, blob FROM parsed")}
    store = open_store(None, state)
    try:
        records = store.records()
        assert {r.kind for r in records} >= {"TCPRoute", "Gateway", "VirtualService"}
        for rec in records:
            parsed = decode(entries[rec.key], *rec.key)
            assert parsed is not None, rec.key
            assert parsed == store._parse_record(rec), rec.key
    finally:
        store.close()
