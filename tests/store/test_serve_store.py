"""`tcpmesh serve` on its SQLite store, as a real process: HTTP codes, kill -9 during an apply burst, restarts."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from tcpmesh.apiclient import ServerError, request_json
from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts
from tcpmesh.runtime.polling import wait_until
from tcpmesh.store import open_store

from .test_store import vs


def _process(state: Path, url: str | None = None) -> ControlPlaneProcess:
    args = ["--store", url] if url else []
    return ControlPlaneProcess(None, state, MeshPorts.free(), args)


def _apply(cp: ControlPlaneProcess, text: str) -> tuple[int, dict[str, object]]:
    code, payload = request_json(server=cp.http, token=cp.token, path="/api/apply", body=text.encode(), timeout=10)
    return code, payload


def test_http_codes_for_conflict_and_invalid(tmp_path: Path) -> None:
    cp = _process(tmp_path / "state")
    cp.start()
    try:
        code, payload = _apply(cp, vs())
        assert code == 200
        assert payload["items"][0]["resourceVersion"] == "1"  # type: ignore[index]
        code, payload = _apply(cp, vs(rv="7").replace("svc.default", "x.default"))
        assert code == 409
        assert "the object has been modified" in str(payload["problems"])
        code, payload = _apply(cp, vs("tcp_echo"))
        assert code == 422
        assert "a lowercase RFC 1123 subdomain" in str(payload["problems"])
        _, items = request_json(server=cp.http, token=cp.token, path="/api/resources?kind=VirtualService")
        assert [(i["name"], i["resourceVersion"]) for i in items["items"]] == [("tcp-echo", "1")]
        assert cp.status()["generation"] == 2  # the empty store, then the one accepted apply
    finally:
        cp.stop()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def test_kill_9_during_an_apply_burst_loses_no_acknowledged_apply_and_leaves_no_debris(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("etcd3").url() if backend == "etcd" else None
    state = tmp_path / "state"
    cp = _process(state, url)
    cp.start()
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()
    killed = threading.Event()

    def writer(i: int) -> None:
        for n in range(200):  # bounded
            if killed.is_set():
                return
            try:
                code, _ = _apply(cp, vs(f"w{i}", weight=n % 100 + 1))
            except ServerError:
                return
            if code == 200:
                with lock:
                    acknowledged[f"w{i}"] = n % 100 + 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 8 or None, timeout=30, what="every writer to get an apply through")
    assert cp.process is not None
    os.kill(cp.process.pid, signal.SIGKILL)
    killed.set()
    cp.process.wait(10)
    for t in threads:
        t.join(30)
    store = open_store(url, state)  # the lock died with the process
    try:
        stored = {r.name: int(r.body.split("weight: ")[1].split()[0]) for r in store.records()}
        # An acknowledged apply is on disk; one in flight at the kill may be there too (it committed, the answer
        # was lost), so each writer's stored weight is its last acknowledged one or the next.
        for name, weight in acknowledged.items():
            assert stored[name] in (weight, weight % 100 + 1), (name, weight, stored[name])
    finally:
        store.close()
    leftovers = sorted(p.name for p in state.iterdir() if p.name not in ("logs", "control-plane.ready.json"))
    assert set(leftovers) <= {"store.db", "store.db-wal", "store.db-shm", "store.lock", "token"}, leftovers
    # And the restarted control plane serves it, including the resources it had before the kill.
    cp.start()
    try:
        assert cp.status()["resources"] == len(stored)
    finally:
        cp.stop()


def test_a_second_serve_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _process(state)
    first.start()
    try:
        assert _apply(first, vs())[0] == 200
        second = _process(state)
        with pytest.raises(RuntimeError, match="exited"):
            second.start(timeout=20)
        assert "in use by another tcpmesh" in second.log_path.read_text()
        assert first.status()["resources"] == 1
    finally:
        first.stop()


def test_a_second_tcpmesh_up_on_the_same_state_dir_is_refused_and_touches_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tcpmesh.store import lock_state_dir

    state = tmp_path / "state"
    store = open_store(None, state)
    assert store.apply(vs()).ok
    store.close()
    before = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in state.iterdir())
    fd = lock_state_dir(state, "up.lock")  # what the running `tcpmesh up` holds
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tcpmesh", "up", "--state-dir", str(state)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(fd)
    assert proc.returncode == 1
    assert "in use by another tcpmesh" in proc.stderr
    after = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in state.iterdir() if p.name != "up.lock")
    assert after == before  # the store, its lock and everything else exactly as they were
