"""--config-dir as a one-way input: bad, half-written, vanishing and unreadable files never remove serving config."""

from __future__ import annotations

import os
import random
import time
import urllib.request
from pathlib import Path

import pytest

from tcpmesh.apiclient import request_json
from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts
from tcpmesh.runtime.polling import wait_until
from tcpmesh.store import ConfigStore, open_store
from tcpmesh.store.configdir import DirectoryInput

from .test_store import vs


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    s = open_store(None, tmp_path / "state")
    yield s  # type: ignore[misc]
    s.close()


def names(store: ConfigStore) -> list[str]:
    return sorted(r.name for r in store.records())


def test_each_file_is_one_transaction_and_tcpmesh_never_writes_there(tmp_path: Path, store: ConfigStore) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text("# mine\n" + vs("a") + "---\n" + vs("b"))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in cfg.iterdir())
    source = DirectoryInput(cfg, store)
    assert source.scan(settle=False)
    assert names(store) == ["a", "b"]
    # b leaves the file, c joins: one change; a file with one invalid document changes nothing.
    (cfg / "a.yaml").write_text(vs("a") + "---\n" + vs("c"))
    source.scan(settle=False)
    assert names(store) == ["a", "c"]
    revision = store.revision()
    (cfg / "a.yaml").write_text(vs("a") + "---\n" + vs("d", weight=-1))
    source.scan(settle=False)
    assert names(store) == ["a", "c"]
    assert store.revision() == revision
    assert "weight -1" in str(store.input_problems[str(cfg.resolve() / "a.yaml")])
    assert source.rejected_files == 1
    (cfg / "a.yaml").unlink()
    source.scan(settle=False)
    assert names(store) == []
    assert sorted(p.name for p in cfg.iterdir()) == [n for n, _ in before if n != "a.yaml"]


def test_owned_resources_cannot_be_changed_through_the_api(tmp_path: Path, store: ConfigStore) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(vs("a"))
    DirectoryInput(cfg, store).scan(settle=False)
    result = store.apply(vs("a").replace("svc.default", "x.default"))
    assert result.conflict
    assert f"owned by the config directory file {cfg.resolve() / 'a.yaml'}" in result.problems[0].message
    assert store.delete(vs("a")).conflict


def test_unreadable_empty_and_half_written_files_keep_the_last_good_content(tmp_path: Path, store: ConfigStore) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    good = vs("a")
    (cfg / "a.yaml").write_text(good)
    source = DirectoryInput(cfg, store)
    source.scan(settle=False)
    for bad in (
        "",
        good[: len(good) // 2],
        "kind: VirtualService\nspec: [",
        "\xff".encode("latin-1").decode("latin-1"),
    ):
        (cfg / "a.yaml").write_text(bad)
        source.scan(settle=False)
        assert names(store) == ["a"], bad
    (cfg / "a.yaml").write_bytes(b"\xff\xfe")
    source.scan(settle=False)
    assert names(store) == ["a"]
    if os.geteuid() != 0:  # root reads anything
        (cfg / "a.yaml").write_text(good)
        (cfg / "a.yaml").chmod(0)
        source.scan(settle=False)
        assert names(store) == ["a"]
    # A missing directory (unmounted volume) removes nothing.
    (cfg / "a.yaml").unlink()
    cfg.rmdir()
    source.scan(settle=False)
    assert names(store) == ["a"]


def test_a_file_is_read_only_once_it_stopped_changing(tmp_path: Path, store: ConfigStore) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    source = DirectoryInput(cfg, store, quiet=0.2)
    (cfg / "a.yaml").write_text(vs("a"))
    assert not source.scan()  # first seen: wait for it to settle
    wait_until(lambda: source.scan() or None, timeout=5, interval=0.05, what="the settled file to be applied")
    assert names(store) == ["a"]


def test_serve_survives_churn_and_a_restart_with_a_bad_file_serves_the_last_good_config(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(vs("a"))
    cp = ControlPlaneProcess(cfg, tmp_path / "state", MeshPorts.free())
    cp.start()
    try:
        assert cp.status()["resources"] == 1
        code, payload = request_json(
            server=cp.http, token=cp.token, path="/api/apply", body=vs("a").replace("svc.default", "x.default").encode()
        )
        assert code == 409
        assert "a.yaml" in str(payload["problems"])
        # Churn: files created, half-written, made invalid and deleted while the server scans, for 3 s.
        rng = random.Random(17)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            path = cfg / f"churn-{rng.randrange(5)}.yaml"
            choice = rng.randrange(4)
            if choice == 0:
                path.write_text(vs(path.stem))
            elif choice == 1:
                path.write_text(vs(path.stem)[:40])
            elif choice == 2:
                path.unlink(missing_ok=True)
            else:
                path.write_text("kind: [")
            time.sleep(0.005)
        assert cp.process is not None
        assert cp.process.poll() is None
        assert "a" in [
            i["name"] for i in request_json(server=cp.http, token=cp.token, path="/api/resources")[1]["items"]
        ]
    finally:
        cp.stop()
    for path in cfg.glob("churn-*.yaml"):
        path.unlink()
    (cfg / "a.yaml").write_text("kind: VirtualService\nspec: [")
    cp.start()
    try:
        status = cp.status()
        assert status["resources"] == 1  # a's last good content, not an empty config
        assert status["generation"] == 1
        assert str(cfg / "a.yaml") in status["input_problems"]
        with urllib.request.urlopen(f"http://{cp.http}/metrics", timeout=5) as resp:
            assert "tcpmesh_config_dir_rejected_files 1.0" in resp.read().decode()
    finally:
        cp.stop()
