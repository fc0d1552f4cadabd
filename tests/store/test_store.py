"""The store, on SQLite and on etcd: every change validated as a whole, atomic, compare-and-swap on resourceVersion."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tcpmesh.store import ConfigStore, StateDirLocked, open_store

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: default{extra}
spec:
  hosts: [svc.default.svc.cluster.local]
  tcp:
  - route:
    - destination: {{host: svc.default.svc.cluster.local}}
      weight: {weight}
"""


def vs(name: str = "tcp-echo", weight: int = 100, rv: str | None = None) -> str:
    extra = f'\n  resourceVersion: "{rv}"' if rv is not None else ""
    return VS.format(name=name, weight=weight, extra=extra)


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ConfigStore:
    """The same tests against SQLite and against a real 3-member etcd (a fresh key prefix per test)."""
    url = request.getfixturevalue("etcd3").url() if request.param == "etcd" else None
    s = open_store(url, tmp_path / "state")
    yield s  # type: ignore[misc]
    s.close()


def test_apply_sets_resource_version_and_generation(store: ConfigStore) -> None:
    first = store.apply(vs())
    assert first.ok
    assert first.lines == ["virtualservice.networking.istio.io/tcp-echo created"]
    rv = first.items[0]["resourceVersion"]
    assert rv == str(store.revision())  # the store revision of the commit
    assert first.items[0]["generation"] == 1
    again = store.apply(vs())
    assert again.lines == ["virtualservice.networking.istio.io/tcp-echo unchanged"]
    assert store.revision() == int(rv)
    changed = store.apply(vs(weight=100, rv=rv).replace("hosts: [svc", "hosts: [svc2.default.svc.cluster.local, svc"))
    assert changed.ok, changed.problems
    assert int(changed.items[0]["resourceVersion"]) > int(rv)
    assert changed.items[0]["generation"] == 2
    assert store.records()[0].mod_revision == int(changed.items[0]["resourceVersion"])


def test_stale_resource_version_is_a_conflict(store: ConfigStore) -> None:
    rv = store.apply(vs()).items[0]["resourceVersion"]
    assert store.apply(vs().replace("svc.default", "other.default")).ok
    revision = store.revision()
    stale = store.apply(vs(rv=rv).replace("svc.default", "third.default"))
    assert not stale.ok
    assert stale.conflict
    assert "the object has been modified; please apply your changes to the latest version" in stale.problems[0].message
    assert 'virtualservices.networking.istio.io "tcp-echo"' in stale.problems[0].message
    assert store.revision() == revision
    assert "other.default" in store.records()[0].body


def test_comments_are_kept(store: ConfigStore) -> None:
    text = "# owned by team A\n" + vs().replace("weight: 100", "weight: 100  # all of it")
    assert store.apply(text).ok
    assert "# all of it" in store.records()[0].body


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("tcp_echo", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"),
        ("Tcp-echo", "a lowercase RFC 1123 subdomain"),
        ("a" * 254, "must be no more than 253 characters"),
        ("a/b", "a lowercase RFC 1123 subdomain"),
    ],
)
def test_names_a_file_could_not_hold_are_rejected_with_the_api_servers_words(
    store: ConfigStore, name: str, reason: str
) -> None:
    assert store.apply(vs("tcp-echo")).ok
    result = store.apply(vs(name))
    assert not result.ok
    assert any(
        p.field == "metadata.name" and reason in p.message and "Invalid value" in p.message for p in result.problems
    )
    assert [r.name for r in store.records()] == ["tcp-echo"]


def test_names_that_a_file_name_would_merge_are_distinct(store: ConfigStore) -> None:
    # "a.b" and "a-b" both became the file "default.virtualservice.a-b.yaml" in the old directory store.
    assert store.apply(vs("a.b")).ok
    assert store.apply(vs("a-b", weight=100).replace("svc.default", "other.default")).ok
    assert sorted(r.name for r in store.records()) == ["a-b", "a.b"]


def test_a_request_is_atomic_over_its_documents(store: ConfigStore) -> None:
    result = store.apply(vs("one") + "---\n" + vs("two", weight=-5))
    assert not result.ok
    assert store.records() == []
    assert store.revision() == 0


def test_a_change_over_the_limit_commits_nothing(tmp_path: Path) -> None:
    s = open_store(None, tmp_path, max_resources=2)
    try:
        assert s.apply(vs("a") + "---\n" + vs("b")).ok
        over = s.apply(vs("c"))
        assert not over.ok
        assert "3 resources; the limit is 2" in str(over.problems)
        assert sorted(r.name for r in s.records()) == ["a", "b"]
    finally:
        s.close()


def test_delete_is_one_transaction_and_reports_missing(store: ConfigStore) -> None:
    assert store.apply(vs("a") + "---\n" + vs("b")).ok
    result = store.delete(vs("a") + "---\n" + vs("zz"))
    assert not result.ok
    assert 'virtualservice.networking.istio.io/zz not found in namespace "default"' in str(result.problems)
    assert sorted(r.name for r in store.records()) == ["a", "b"]
    assert store.delete(vs("a")).lines == ["virtualservice.networking.istio.io/a deleted"]


def test_a_second_writer_on_the_state_dir_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    first = open_store(None, tmp_path)
    try:
        assert first.apply(vs()).ok
        with pytest.raises(StateDirLocked, match="in use by another tcpmesh"):
            open_store(None, tmp_path)
        reader = open_store(None, tmp_path, writer=False)  # reading needs no lock
        assert [r.name for r in reader.records()] == ["tcp-echo"]
        reader.close()
    finally:
        first.close()
    open_store(None, tmp_path).close()  # released with the first one


def test_twenty_concurrent_writers_lose_no_acknowledged_update(store: ConfigStore) -> None:
    """Each writer bumps a shared counter (the weight field) with compare-and-swap, retrying on 409, and applies
    and deletes a resource of its own; the final store is exactly the last acknowledged state."""
    assert store.apply(vs("counter", weight=0)).ok
    acknowledged = [0] * 20
    per_writer = 10

    own: dict[str, int | None] = {}

    def writer(i: int) -> None:
        done = 0
        for n in range(per_writer * 50):  # bounded
            if done == per_writer:
                break
            # Each writer also creates, changes and deletes a resource of its own: the last acknowledged wins.
            name = f"own-{i}"
            if n % 3 == 2:
                if store.delete(vs(name)).ok:
                    own[name] = None
            elif store.apply(vs(name, weight=n + 1)).ok:
                own[name] = n + 1
            rec = store.get("VirtualService", "counter")[0]
            weight = int(rec.body.split("weight: ")[1].split()[0])
            result = store.apply(vs("counter", weight=weight + 1, rv=str(rec.mod_revision)))
            if result.ok:
                done += 1
            else:
                assert result.conflict, result.problems
        acknowledged[i] = done

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    final = store.get("VirtualService", "counter")[0]
    assert int(final.body.split("weight: ")[1].split()[0]) == sum(acknowledged) == 20 * per_writer
    stored = {r.name: int(r.body.split("weight: ")[1].split()[0]) for r in store.records() if r.name != "counter"}
    assert stored == {name: weight for name, weight in own.items() if weight is not None}


@pytest.mark.etcd
def test_a_change_larger_than_one_etcd_transaction_is_refused_whole(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    s = open_store(request.getfixturevalue("etcd3").url(), tmp_path)
    try:
        result = s.apply("---\n".join(vs(f"vs-{i}") for i in range(200)))
        assert not result.ok
        assert "more than one etcd transaction holds (127 with --max-txn-ops 128)" in result.problems[-1].message
        assert s.records() == []
    finally:
        s.close()


@pytest.mark.etcd
def test_a_replicas_own_commits_are_held_exactly_as_etcd_has_them(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The committing replica takes its own change into its snapshot without re-reading etcd: creations, updates,
    deletes and re-creations give the same records, revisions included, as a fresh read."""
    url = request.getfixturevalue("etcd3").url()
    s = open_store(url, tmp_path / "a")
    try:
        assert s.apply(vs("a") + "---\n" + vs("b")).ok
        assert s.apply(vs("a").replace("svc.default", "a2.default")).ok
        assert s.delete(vs("b")).ok
        assert s.apply(vs("b").replace("svc.default", "b2.default") + "---\n" + vs("c")).ok
        held = s.records()
        fresh = open_store(url, tmp_path / "fresh")
        try:
            assert fresh.records() == held
            assert fresh.revision() == s.revision()
        finally:
            fresh.close()
        assert [(r.name, r.create_revision < r.mod_revision) for r in held] == [("a", True), ("b", False), ("c", False)]
    finally:
        s.close()


@pytest.mark.etcd
def test_a_replica_follows_an_etcd_restored_to_an_older_revision(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A snapshot never goes back to an older read while connected; after reconnecting, etcd's state wins, even
    when it is older (an etcd restored from a backup, or a new cluster at the same address)."""
    import shutil

    from tcpmesh.runtime.polling import wait_until

    etcd = request.getfixturevalue("etcd1")
    url = etcd.url("restored")
    s = open_store(url, tmp_path / "a")
    try:
        for name in ("a", "b", "c"):
            assert s.apply(vs(name)).ok
        before = s.revision()
        etcd.stop()
        shutil.rmtree(etcd.root / "m0")
        etcd.start()
        other = open_store(url, tmp_path / "b")
        try:
            assert other.apply(vs("z")).ok
            assert other.revision() < before
        finally:
            other.close()
        wait_until(lambda: [r.name for r in s.records()] == ["z"] or None, timeout=30, what="the restored state")
        assert s.apply(vs("y")).ok
    finally:
        s.close()
