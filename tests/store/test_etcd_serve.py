"""`tcpmesh serve --store etcd://…` against real etcd: an outage keeps serving, fails applies clearly, recovers."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.apiclient import request_json
from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts
from tcpmesh.runtime.polling import wait_until

from .conftest import EtcdCluster
from .test_store import vs

pytestmark = pytest.mark.etcd


def _call(cp: ControlPlaneProcess, path: str, body: bytes | None = None) -> tuple[int, Any]:
    return request_json(cp.http, path, body=body, token=cp.token)


def _ready(cp: ControlPlaneProcess) -> int:
    try:
        with urllib.request.urlopen(f"http://{cp.http}/readyz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_losing_etcd_keeps_serving_fails_applies_clearly_and_recovers(tmp_path: Path, etcd1: EtcdCluster) -> None:
    cp = ControlPlaneProcess(None, tmp_path / "state", MeshPorts.free(), ["--store", etcd1.url()])
    cp.start()
    try:
        assert request_json(server=cp.http, token=cp.token, path="/api/apply", body=vs().encode())[0] == 200
        generation = cp.status()["generation"]
        etcd1.stop()
        wait_until(lambda: _ready(cp) == 503 or None, timeout=15, interval=0.1, what="readyz to report the outage")
        code, payload = request_json(server=cp.http, token=cp.token, path="/api/apply", body=vs("two").encode())
        assert code == 503
        assert "store is unavailable; nothing was changed" in str(payload["problems"])
        status = cp.status()
        assert (status["resources"], status["generation"]) == (1, generation)  # the last good snapshot
        etcd1.start()
        wait_until(lambda: _ready(cp) == 200 or None, timeout=30, interval=0.1, what="readyz after etcd returns")
        assert request_json(server=cp.http, token=cp.token, path="/api/apply", body=vs("two").encode())[0] == 200
        assert cp.status()["resources"] == 2
    finally:
        cp.stop()


def test_two_replicas_on_one_etcd_serve_the_same_config(tmp_path: Path, etcd3: EtcdCluster) -> None:
    url = etcd3.url()
    replicas = [ControlPlaneProcess(None, tmp_path / f"state{i}", MeshPorts.free(), ["--store", url]) for i in range(2)]
    for cp in replicas:
        cp.start()
    try:
        assert _call(replicas[0], "/api/apply", body=vs().encode())[0] == 200
        wait_until(
            lambda: replicas[1].status()["resources"] == 1 or None, timeout=10, interval=0.05, what="the other replica"
        )
        # A stale write through the other replica is a conflict there too.
        rv = _call(replicas[1], "/api/resources")[1]["items"][0]["resourceVersion"]
        assert (
            _call(replicas[1], "/api/apply", body=vs(rv=rv, weight=100).replace("svc.default", "b.default").encode())[0]
            == 200
        )
        code, _ = _call(replicas[0], "/api/apply", body=vs(rv=rv).replace("svc.default", "c.default").encode())
        assert code == 409
    finally:
        for cp in replicas:
            cp.stop()


def test_killing_one_of_three_members_keeps_serving_and_applying(tmp_path: Path, etcd3_own: EtcdCluster) -> None:
    cp = ControlPlaneProcess(None, tmp_path / "state", MeshPorts.free(), ["--store", etcd3_own.url()])
    cp.start()
    try:
        assert request_json(server=cp.http, token=cp.token, path="/api/apply", body=vs().encode())[0] == 200
        etcd3_own.stop_member(0)  # the member the replica talks to first
        # The replica moves to another member; applies succeed again within a bounded time (503 meanwhile).
        wait_until(
            lambda: (
                request_json(server=cp.http, token=cp.token, path="/api/apply", body=vs("two").encode())[0] == 200
                or None
            ),
            timeout=30,
            interval=0.2,
            what="an apply through the remaining two members",
        )
        assert cp.status()["resources"] == 2
        assert _ready(cp) == 200
    finally:
        cp.stop()
