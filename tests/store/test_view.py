"""The store's view is advanced by what changed (SQLite's changes_since) and always equals a full read."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from tcpmesh.model.config import RESOURCE_FIELDS, Config
from tcpmesh.store import ConfigStore, SqliteBackend, open_store

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from synth import MeshSpec, service_yaml, vs_yaml  # noqa: E402


def fresh(state: Path) -> Config:
    """The config read whole by another (read-only) store: no view to advance."""
    return fresh_keyed(state)[0]


def fresh_keyed(state: Path) -> tuple[Config, str]:
    reader = ConfigStore(SqliteBackend(state / "store.db", lock=False), state)
    try:
        config, _, key = reader.load_keyed()
        return config, key
    finally:
        reader.close()


def test_an_advanced_view_equals_a_full_read(tmp_path: Path) -> None:
    spec = MeshSpec(30)
    store = open_store(None, tmp_path)
    rng = random.Random(15)
    try:
        for i in range(spec.services):
            assert store.apply(service_yaml(spec, i) + "---\n" + vs_yaml(spec, i), source=f"s{i}.yaml").ok
        before, _ = store.load()
        keys: dict[str, Config] = {}
        earlier: list[Config] = [before]
        known = 0
        for step in range(60):
            i = rng.randrange(spec.services)
            action = rng.choice(("edit", "edit", "delete", "recreate"))
            if action == "edit":
                w = rng.randrange(101)
                assert store.apply(vs_yaml(spec, i, w, 100 - w), source="edit.yaml").ok
            elif action == "delete":
                store.delete(vs_yaml(spec, i))  # may be gone already: then it says so
            else:
                assert store.apply(service_yaml(spec, i) + "---\n" + vs_yaml(spec, i), source="again.yaml").ok
            config, problems, key = store.load_keyed()
            assert not problems
            assert (config, key) == fresh_keyed(tmp_path), f"step {step}: {action} svc-{i}"
            assert store.content_key() == key  # the same digest from the records alone
            keys.setdefault(key, config)
            assert keys[key] == config  # equal keys, equal configs
            assert [r.meta.order for r in config.virtual_services] == sorted(
                r.meta.order for r in config.virtual_services
            )
            # The lineage, where it knows, names exactly the positions that hold another object.
            for old in earlier:
                for name in RESOURCE_FIELDS:
                    a, b = getattr(old, name), getattr(config, name)
                    moved = config.moved(a, b)
                    if moved is not None:
                        assert len(a) == len(b)
                        assert list(moved) == [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x is not y], step
                        known += a is not b
            if action == "edit" and earlier[-1].virtual_services is not config.virtual_services:
                last = earlier[-1].virtual_services
                if len(last) == len(config.virtual_services):  # svc-i's VirtualService was there: in place
                    assert config.moved(last, config.virtual_services) is not None, step
            earlier = [*earlier[-3:], config]
        assert known >= 20
        # A weight edit leaves every other kind's tuple the very same object: the translator's diff is O(1).
        assert store.apply(vs_yaml(spec, 0, 50, 50), source="edit.yaml").ok
        config, _ = store.load()
        assert store.apply(vs_yaml(spec, 0, 10, 90), source="edit.yaml").ok
        after, _ = store.load()
        assert after.services is config.services
        assert after.workload_entries is config.workload_entries
        assert sum(a is not b for a, b in zip(config.virtual_services, after.virtual_services, strict=True)) == 1
        assert before != after
        # Two edits read in one load: the lineage from the first config covers both.
        assert store.apply(vs_yaml(spec, 3, 1, 99), source="edit.yaml").ok
        assert store.apply(vs_yaml(spec, 7, 2, 98), source="edit.yaml").ok
        both, _ = store.load()
        vss = [r.meta.name for r in after.virtual_services]
        assert both.moved(after.virtual_services, both.virtual_services) == tuple(
            sorted((vss.index("svc-3"), vss.index("svc-7")))
        )
    finally:
        store.close()


def test_the_content_key_names_the_content_not_the_history(tmp_path: Path) -> None:
    spec = MeshSpec(3)
    store = open_store(None, tmp_path / "a")
    try:
        for i in range(spec.services):
            assert store.apply(service_yaml(spec, i) + "---\n" + vs_yaml(spec, i), source=f"s{i}.yaml").ok
        start = store.content_key()
        assert store.apply(vs_yaml(spec, 1, 30, 70), source="s1.yaml").ok
        edited = store.content_key()
        assert edited != start
        assert store.apply(vs_yaml(spec, 1), source="s1.yaml").ok  # back to the first weights
        assert store.content_key() == start
        assert store.load_keyed()[2] == start
        # Deleted and created again, the same body is a later resource (its creation order is in the Config).
        store.delete(vs_yaml(spec, 1))
        assert store.apply(vs_yaml(spec, 1), source="s1.yaml").ok
        assert store.content_key() not in (start, edited)
        assert store.load_keyed()[2] == store.content_key()
    finally:
        store.close()
