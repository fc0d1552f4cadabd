"""`tcpmesh rollout` through a real Envoy: a clean 0 → 100 rollout under load, and a gate that rolls back."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tcpmesh.apiclient import request_json
from tcpmesh.cli import main
from tcpmesh.runtime.ports import free_port

from .conftest import SAMPLES, Mesh
from .live import live_connections, wait_no_drains
from .traffic import LoadLoop, assert_split, replies

pytestmark = pytest.mark.envoy


def test_clean_rollout_completes_without_a_failed_or_cut_connection(
    mesh: Mesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh.start(mesh.copy_samples([SAMPLES / "tcp-echo"], tmp_path / "in"))
    port = mesh.port(31400)
    with live_connections(port, 20) as live, LoadLoop(port, max_seconds=90) as load:
        load.wait_for(20)
        args = ["rollout", "vs/tcp-echo", "--to", "v2", "--steps", "25,50,100", "--interval", "1s"]
        code = main([*args, "--server", mesh.control_plane.http, "--token-file", str(mesh.control_plane.token_file)])
        out = capsys.readouterr().out
        assert code == 0, out
        load.wait_for(50)
        wait_no_drains(mesh.envoys[0])
        assert live.check("after-rollout") == []
    assert load.failures == []
    for step in ("25%", "50%", "100%"):
        assert f"step {step}: applied and ACKed by every proxy" in out
    assert "rollout complete" in out
    _, shown = request_json(mesh.control_plane.http, "/api/rollouts", token=mesh.control_plane.token)
    assert shown["rollouts"][0]["state"] == "complete"
    assert shown["rollouts"][0]["done"] == 100
    assert_split(replies(port, 100), {"two hello": 1.0})
    # `get -o yaml` shows the stored VirtualService as the rollout left it, with server metadata and a status.
    token = ["--server", mesh.control_plane.http, "--token-file", str(mesh.control_plane.token_file)]
    assert main(["get", "vs", "tcp-echo", "-o", "yaml", *token]) == 0
    got = yaml.safe_load(capsys.readouterr().out)
    assert got["spec"]["tcp"][0]["route"][-1] == {
        "destination": {"host": "tcp-echo", "port": {"number": 9000}, "subset": "v2"},
        "weight": 100,
    }
    assert int(got["metadata"]["resourceVersion"]) > 0
    assert got["metadata"]["generation"] == 4  # created, then three steps
    mesh.wait_synced()
    assert main(["get", "vs", "tcp-echo", "-o", "json", *token]) == 0
    conditions = {c["type"]: c["status"] for c in json.loads(capsys.readouterr().out)["status"]["conditions"]}
    assert conditions == {"Accepted": "True", "Reconciled": "True"}


def test_failing_gate_rolls_back_and_says_why(mesh: Mesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = free_port()  # v3's only endpoint: nothing listens there
    extra = tmp_path / "in" / "v3.yaml"
    extra.parent.mkdir(parents=True)
    extra.write_text(f"""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: tcp-echo-v3, namespace: default}}
spec:
  address: 127.0.0.1
  labels: {{app: tcp-echo, version: v3}}
  ports: {{tcp: {dead}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tcp-echo-destination, namespace: default}}
spec:
  host: tcp-echo
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}
""")
    mesh.start([*mesh.copy_samples([SAMPLES / "tcp-echo"], tmp_path / "in"), extra])
    port = mesh.port(31400)
    with LoadLoop(port, max_seconds=90) as load:
        load.wait_for(20)
        args = ["rollout", "vs/tcp-echo", "--to", "v3", "--steps", "50,100", "--interval", "5s"]
        code = main(
            [
                *args,
                "--max-failure-rate",
                "1%",
                "--server",
                mesh.control_plane.http,
                "--token-file",
                str(mesh.control_plane.token_file),
            ]
        )
        out = capsys.readouterr().out
    assert code == 1, out
    assert "gate failed at 50%: outbound|9000|v3|tcp-echo.default.svc.cluster.local:" in out
    assert "connect failures in" in out
    assert "rolled back to the starting weights" in out
    _, shown = request_json(mesh.control_plane.http, "/api/rollouts", token=mesh.control_plane.token)
    assert shown["rollouts"][0]["state"] == "rolled back"
    assert "connect failures" in shown["rollouts"][0]["reason"]
    assert load.failures  # the bad step did refuse connections: that is what the gate saw
    mesh.wait_synced()
    assert_split(replies(port, 100), {"one hello": 1.0})  # back on all v1


def test_ctrl_c_leaves_the_last_completed_step(mesh: Mesh, tmp_path: Path) -> None:
    """Ctrl-C while a step is being watched puts back the last step that passed its gate, and keeps live
    connections; the rollout is reported as interrupted there."""
    mesh.start(mesh.copy_samples([SAMPLES / "tcp-echo"], tmp_path / "in"))
    port = mesh.port(31400)
    server = ["--server", mesh.control_plane.http, "--token-file", str(mesh.control_plane.token_file)]
    cmd = [sys.executable, "-m", "tcpmesh", "rollout", "vs/tcp-echo", "--to", "v2", "--steps", "25,50,100",
           "--interval", "4s", *server]  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    with live_connections(port, 10) as live:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
            seen: list[str] = []
            deadline = time.monotonic() + 60
            while not any("step 50%: applied and ACKed" in line for line in seen):
                assert time.monotonic() < deadline, seen
                assert proc.poll() is None, seen
                seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            proc.send_signal(signal.SIGINT)  # 4 s into the 50% step's watch at the latest: it has not passed
            code = proc.wait(timeout=30)
        finally:
            proc.kill()
        out = "".join(seen) + "".join(iter_queue(lines))
        assert code == 130, out
        assert "put back the last completed step (25%)" in out
        mesh.wait_synced()
        assert live.check("after-interrupt") == []
    query = "/api/resources?kind=VirtualService&name=tcp-echo&namespace=default&content=1"
    code, got = request_json(mesh.control_plane.http, query, token=mesh.control_plane.token)
    assert code == 200, got
    weights = {
        d["destination"]["subset"]: d.get("weight") for d in got["items"][0]["object"]["spec"]["tcp"][0]["route"]
    }
    assert weights == {"v1": 75, "v2": 25}
    _, shown = request_json(mesh.control_plane.http, "/api/rollouts", token=mesh.control_plane.token)
    assert (shown["rollouts"][0]["state"], shown["rollouts"][0]["done"]) == ("interrupted", 25)


def iter_queue(q: queue.Queue[str]) -> list[str]:
    out: list[str] = []
    while True:
        try:
            out.append(q.get(timeout=1))
        except queue.Empty:
            return out
