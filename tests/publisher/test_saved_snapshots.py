"""Saved snapshots: a restart serves what the last run published before it translates, and only when the store's
content, the code and the options are those it was saved for. A real ControlPlane, SQLite store and grpc.aio
ADS server, and a raw ADS client on loopback; the translator is wrapped (in the test) to hold translation back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2

from tcpmesh import publisher as publisher_module
from tcpmesh.controlplane import ControlPlane
from tcpmesh.httpapi import status_json
from tcpmesh.model.config import Config, load_config
from tcpmesh.saved_snapshots import MAGIC, SavedGroup, SnapshotFile
from tcpmesh.store import import_paths, open_store
from tcpmesh.translation import build_snapshot
from tcpmesh.translator import Proxy, TranslateOptions
from tcpmesh.translator.incremental import IncrementalTranslator
from tcpmesh.xds.cache import SnapshotCache
from tcpmesh.xds.types import CLUSTER_TYPE, LISTENER_TYPE, Node
from tests.xds.ads_testkit import AdsClient, ack, eventually, request, run

from .test_publisher import ROOT, V2, routed_to, sync

OPTIONS = TranslateOptions(inline_weights=True)
V1_CLUSTER = "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
V2_CLUSTER = "outbound|9000|v2|tcp-echo.default.svc.cluster.local"


class Gate:
    """Translators that wait at each `update` while the gate is shut; counts the updates begun and ended."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.begun = 0
        self.ended = 0
        self.fail = False

    def make(self, proxy: Proxy, options: TranslateOptions) -> GatedTranslator:
        return GatedTranslator(proxy, options, self)


class GatedTranslator(IncrementalTranslator):
    def __init__(self, proxy: Proxy, options: TranslateOptions, gate: Gate) -> None:
        super().__init__(proxy, options)
        self._gate = gate

    def advance(self, config: Config) -> None:  # what `update` calls, and the publisher's patching path
        self._gate.begun += 1
        assert self._gate.open.wait(30), "the test never opened the gate"
        if self._gate.fail:
            raise RuntimeError("injected translator fault")
        try:
            super().advance(config)
        finally:
            self._gate.ended += 1


def control_plane(state: Path, gate: Gate, options: TranslateOptions = OPTIONS) -> ControlPlane:
    store = open_store(None, state)
    if store.revision() == 0:
        assert import_paths(store, [ROOT / "samples" / "tcp-echo"]).ok
    saved = SnapshotFile(state / "snapshots.bin")
    return ControlPlane(store, options, translators=gate.make, worker="thread", saved=saved)


async def stop(cp: ControlPlane, *clients: AdsClient) -> None:
    for c in clients:
        await c.close()
    await cp.xds.stop(0)
    cp.close()
    cp.store.close()


def versions(got: dict[str, Any]) -> dict[str, str]:
    return {type_url: resp.version_info for type_url, resp in got.items()}


async def first_run(state: Path, gate: Gate) -> dict[str, Any]:
    """Serve the sample to a gateway, then stop (which saves what was published)."""
    cp = control_plane(state, gate)
    assert (await asyncio.to_thread(cp.reload))[0]
    assert cp.restored_groups == 0
    c = AdsClient(await cp.xds.start())
    got = await sync(c)
    await stop(cp, c)
    assert (state / "snapshots.bin").exists()
    return got


def test_a_restart_serves_the_saved_snapshots_before_translating_and_pushes_nothing_new(tmp_path: Path) -> None:
    state, gate = tmp_path / "state", Gate()

    async def body() -> None:
        before = await first_run(state, gate)
        saved_at = (state / "snapshots.bin").stat()
        gate.open.clear()
        cp = control_plane(state, gate)
        begun = gate.begun
        assert await asyncio.to_thread(cp.restore) == 1
        c = AdsClient(await cp.xds.start())
        try:
            # Served before the config is even read: no translation has begun, the same versions and bytes.
            got = await sync(c)
            assert gate.begun == begun
            assert versions(got) == versions(before)
            assert [r.value for r in got[LISTENER_TYPE].resources] == [r.value for r in before[LISTENER_TYPE].resources]
            assert routed_to(got[LISTENER_TYPE]) == {V1_CLUSTER}
            # The config is accepted as usual; the gateway's translation comes after, and waits at the gate.
            accepted, problems = await asyncio.to_thread(cp.reload)
            assert accepted, problems
            assert cp.generation == 1
            await eventually(lambda: gate.begun == begun + 1)
            assert status_json(cp)["restored_groups"] == 1
            assert "tcpmesh_start_restored_groups 1.0" in cp.metrics.render().decode()
            gate.open.set()
            await eventually(lambda: gate.ended == begun + 1)
            # The translation equals what was served: the next response the proxy gets is the next change's.
            assert cp.store.apply(V2, source="tcp-echo-all-v1.yaml").ok
            assert (await asyncio.to_thread(cp.reload))[0]
            lds = await c.recv()
            assert lds.type_url == LISTENER_TYPE
            assert routed_to(lds) == {V2_CLUSTER}
            c.send(ack(lds))
            await c.quiet()
        finally:
            await stop(cp, c)
        # That change was saved at the stop; the restart's re-translation of the same content was not a change.
        assert (state / "snapshots.bin").stat().st_mtime_ns != saved_at.st_mtime_ns
        cp = control_plane(state, gate)
        assert await asyncio.to_thread(cp.restore) == 1
        c = AdsClient(await cp.xds.start())
        try:
            assert routed_to((await sync(c))[LISTENER_TYPE]) == {V2_CLUSTER}
            assert (await asyncio.to_thread(cp.reload))[0]
            await eventually(lambda: cp.publisher.groups() == 1)
        finally:
            saved_at = (state / "snapshots.bin").stat()
            await stop(cp, c)
        assert (state / "snapshots.bin").stat().st_mtime_ns == saved_at.st_mtime_ns  # nothing new to save

    run(body())


@pytest.mark.parametrize("change", ["store edited while stopped", "other options"])
def test_saved_snapshots_of_other_content_or_options_are_not_served(tmp_path: Path, change: str) -> None:
    state, gate = tmp_path / "state", Gate()

    async def body() -> None:
        await first_run(state, gate)
        options = OPTIONS
        if change == "other options":
            options = TranslateOptions(inline_weights=False)
        else:
            store = open_store(None, state)
            assert store.apply(V2, source="tcp-echo-all-v1.yaml").ok
            store.close()
        cp = control_plane(state, gate, options)
        assert await asyncio.to_thread(cp.restore) == 0
        assert (await asyncio.to_thread(cp.reload))[0]
        c = AdsClient(await cp.xds.start())
        try:
            got = await sync(c)
            if change == "store edited while stopped":
                assert routed_to(got[LISTENER_TYPE]) == {V2_CLUSTER}
            else:
                assert routed_to(got[LISTENER_TYPE]) == set()  # tcp_proxy by ECDS: the listener names no cluster
            assert cp.restored_groups == 0
        finally:
            await stop(cp, c)

    run(body())


def test_a_restored_snapshot_is_never_saved_under_another_content_key(tmp_path: Path) -> None:
    """The store moves on between the restore and the first accepted config (another replica's commit), and the
    restored group then fails to translate: its old snapshot must not be saved as the new content's."""
    state, gate = tmp_path / "state", Gate()

    async def body() -> None:
        await first_run(state, gate)
        cp = control_plane(state, gate)
        assert await asyncio.to_thread(cp.restore) == 1
        assert cp.store.apply(V2, source="tcp-echo-all-v1.yaml").ok
        gate.fail = True
        begun = gate.begun
        assert (await asyncio.to_thread(cp.reload))[0]  # no group translated yet: nothing can fail
        await eventually(lambda: gate.begun == begun + 1)  # the held group's translation, which fails
        await eventually(lambda: cp.rejection is not None)
        key = f"{cp.store.content_key()}|{cp.publisher._saved_key}"
        await stop(cp)
        saved = SnapshotFile(state / "snapshots.bin").read(key)
        assert not saved  # not written under the new key (the file still holds the old one's)

    run(body())


def test_a_group_that_connects_before_the_config_is_accepted_waits_for_it(tmp_path: Path) -> None:
    """After a restore the server is up before the config is read: a new group must not be translated for an
    empty config (it would be served nothing), but for the config once accepted."""
    state, gate = tmp_path / "state", Gate()

    async def body() -> None:
        await first_run(state, gate)
        cp = control_plane(state, gate)
        assert await asyncio.to_thread(cp.restore) == 1
        port = await cp.xds.start()
        sidecar = AdsClient(port)
        try:
            node = Node(id="sidecar~127.0.1.9~client.default~default.svc.cluster.local")
            sidecar.send(request(CLUSTER_TYPE, n=node))
            await sidecar.quiet()  # held: no config is accepted yet
            assert (await asyncio.to_thread(cp.reload))[0]
            cds = await sidecar.recv()
            assert V1_CLUSTER in {cluster_pb2.Cluster.FromString(r.value).name for r in cds.resources}
        finally:
            await stop(cp, sidecar)

    run(body())


def test_saves_once_changes_are_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_module, "SAVE_AFTER", 0.2)
    state, gate = tmp_path / "state", Gate()

    async def body() -> None:
        cp = control_plane(state, gate)
        assert (await asyncio.to_thread(cp.reload))[0]
        c = AdsClient(await cp.xds.start())
        try:
            await sync(c)
            path = state / "snapshots.bin"
            await eventually(path.exists, timeout=10)  # without a stop: a kill -9 later still finds it
            key = f"{cp.store.content_key()}|{cp.publisher._saved_key}"
            saved = SnapshotFile(path).read(key)
            assert saved is not None
            assert len(saved) == 1
        finally:
            await stop(cp, c)

    run(body())


# ----- the file


def _saved_group() -> tuple[tuple[Any, ...], SavedGroup]:
    config, problems = load_config([ROOT / "samples" / "tcp-echo"])
    assert not problems
    translator = IncrementalTranslator(Proxy.gateway(), OPTIONS)
    snapshot = build_snapshot(SnapshotCache(), translator.update(config), translator.serialized())
    group = ("gateway", "istio-system", (("app", "x"),))
    return group, SavedGroup.of(("gateway", "id", "istio-system", (("app", "x"),), "127.0.0.1"), snapshot)


def test_the_file_round_trips_under_its_key_only(tmp_path: Path) -> None:
    group, saved = _saved_group()
    f = SnapshotFile(tmp_path / "snapshots.bin")
    f.write("k1", {group: saved})
    assert (tmp_path / "snapshots.bin").stat().st_mode & 0o777 == 0o600  # secrets' keys may be in it
    assert f.read("k2") is None
    back = f.read("k1")
    assert back == {group: saved}
    restored = SnapshotCache().apply(None, back[group].patch())
    assert {t: ts.version for t, ts in restored.items()} == {
        t: ts.version for t, ts in SnapshotCache().apply(None, saved.patch()).items()
    }


@pytest.mark.parametrize(
    "damage", ["truncated", "a flipped byte", "not ours", "a class in a frame", "a huge length", "no key frame"]
)
def test_a_damaged_file_is_ignored(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    group, saved = _saved_group()
    path = tmp_path / "snapshots.bin"
    SnapshotFile(path).write("k", {group: saved})
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "a flipped byte":
        data[len(data) // 2] ^= 0x01
    elif damage == "not ours":
        data[:4] = b"SQLi"
    elif damage == "a huge length":  # bit rot in a frame's length: refused, not read (nor allocated)
        data[len(MAGIC) : len(MAGIC) + 8] = (2**64 - 1).to_bytes(8, "big")
    elif damage == "no key frame":  # a well-formed file that names no key is not valid for any
        frame = pickle.dumps(("end", hashlib.blake2b(digest_size=32).hexdigest()), pickle.HIGHEST_PROTOCOL)
        data = bytearray(MAGIC + len(frame).to_bytes(8, "big") + frame)
    else:
        ran = tmp_path / "ran"
        frame = pickle.dumps(("key", os.system, f"touch {ran}"), pickle.HIGHEST_PROTOCOL)
        data = bytearray(MAGIC + len(frame).to_bytes(8, "big") + frame)
    path.write_bytes(bytes(data))
    assert SnapshotFile(path).read("k") is None
    if damage == "a class in a frame":
        assert not (tmp_path / "ran").exists()
    assert "ignoring the saved snapshots" in caplog.text


def test_a_write_cut_short_leaves_the_previous_file(tmp_path: Path) -> None:
    group, saved = _saved_group()
    path = tmp_path / "snapshots.bin"
    f = SnapshotFile(path)
    f.write("k", {group: saved})
    crashed, writing = tmp_path / "snapshots.bin.crashed.tmp", tmp_path / "snapshots.bin.writing.tmp"
    crashed.write_bytes(b"half a file")
    writing.write_bytes(b"another replica's write in progress")
    os.utime(crashed, (time.time() - 7200, time.time() - 7200))
    assert f.read("k") == {group: saved}
    assert not crashed.exists()  # an hour old: a crash's leftover
    assert writing.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshots.bin", "snapshots.bin.writing.tmp"]
