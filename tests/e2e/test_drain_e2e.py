"""`tcpmesh drain`: the drained subset's old connections close spread over the period, nothing else closes.

Through a real Envoy: 60 long-lived connections over a 50/50 split, each sending a line every 0.1 s; a drain of
v1 over 12 s. Every old v1 connection closes, at times spread uniformly over the period (Kolmogorov–Smirnov
against the uniform distribution); every v2 connection and every connection opened during the drain stays
open and echoing; Envoy's drain filter counts exactly the v1 connections; no listener changes.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from pathlib import Path

import pytest

from tcpmesh.cli import main
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.polling import wait_until

from .conftest import SAMPLES, Mesh
from .live import LiveConnections, tcp, wait_routed
from .test_preserve_e2e import V1, V2, route_yaml

pytestmark = pytest.mark.envoy

OLD = 60
NEW = 20
OVER = 12.0
KS_CRITICAL = 1.95  # Kolmogorov–Smirnov at α = 0.001: reject uniformity when √n·D exceeds it


class Closes:
    """Sends a line on every connection every 0.1 s and notes when each one stops echoing."""

    def __init__(self, live: LiveConnections) -> None:
        self.live = live
        self.closed_at: dict[int, float] = {}
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add(self, connect: LiveConnections) -> list[int]:
        """Adopt the connections of ``connect``; their indices."""
        with self._lock:
            first = len(self.live.socks)
            self.live.socks += connect.socks
            self.live.readers += connect.readers
            self.live.backends += connect.backends
            return list(range(first, len(self.live.socks)))

    def _run(self) -> None:
        rounds = 0
        while not self._stop.is_set() and rounds < 2_000:  # bounded: 2 000 rounds of 0.1 s
            rounds += 1
            with self._lock:
                indices = [i for i in range(len(self.live.socks)) if i not in self.closed_at]
            for i in indices:
                try:
                    reply = self.live._exchange(i, f"r{rounds}")
                except OSError:
                    reply = ""
                if not reply:
                    self.closed_at[i] = time.monotonic()
                elif not reply.endswith(f"r{rounds}"):
                    self.problems.append(f"connection {i}: {reply!r}")
            self._stop.wait(0.1)

    def __enter__(self) -> Closes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def assert_closed_uniformly(envoy: EnvoyProcess, closed_at: list[float], start: float, over: float) -> None:
    """The drained connections closed at times uniform over the period (Kolmogorov–Smirnov), each by the drain
    filter, and no listener changed."""
    times = [(t - start) / over for t in closed_at]
    # Each close comes at most a step, a push and a read (≤ 0.1 s) after its moment: ~4 % of the period.
    assert min(times) >= 0, times
    assert max(times) <= 1.25, times
    statistic = math.sqrt(len(times)) * ks_statistic([min(t, 1.0) for t in times])
    print(f"drain: {len(times)} closes, √n·D = {statistic:.2f}, at", sorted(round(t, 2) for t in times))
    assert statistic < KS_CRITICAL, (statistic, sorted(round(t, 2) for t in times))
    stats = envoy.stats(filter="tcpmesh_drain|listener_manager.listener_modified")
    assert stats.get("tcpmesh_drain.rbac.denied") == len(times), stats
    assert stats.get("listener_manager.listener_modified", 0) == 0, stats


def ks_statistic(samples: list[float]) -> float:
    """sup |F_n(x) − x| of samples in [0, 1] against the uniform distribution."""
    xs = sorted(samples)
    n = len(xs)
    return max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(xs))


def test_drain_closes_the_subset_spread_over_the_period_and_nothing_else(mesh: Mesh, tmp_path: Path) -> None:
    mesh.start(mesh.copy_samples([SAMPLES / "tcp-echo"], tmp_path / "input"))
    envoy, port = mesh.envoys[0], mesh.port(31400)
    split = tmp_path / "split.yaml"
    split.write_text(route_yaml(31400, 50, 50))
    assert mesh.apply(split)["code"] == 200
    wait_routed(envoy, f"0.0.0.0_{port}", {V1: 50, V2: 50})
    for sock in (socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)):
        sock.close()  # ECDS applies on the workers just after the main thread: let it settle
    live = LiveConnections(tcp(port), OLD)
    old_v1 = {i for i, b in enumerate(live.backends) if b == "one"}
    assert 10 <= len(old_v1) <= OLD - 10, live.backends  # 50/50 over 60: outside this once in ~10⁵ runs
    token = ["--server", mesh.control_plane.http, "--token-file", str(mesh.control_plane.token_file)]
    try:
        with Closes(live) as closes:
            new: list[int] = []
            opener = threading.Timer(OVER / 2, lambda: new.extend(closes.add(LiveConnections(tcp(port), NEW))))
            start = time.monotonic()
            opener.start()
            code = main(["drain", "vs/tcp-echo", "--subset", "v1", "--over", f"{OVER:g}s", "--step", "0.25s", *token])
            opener.join()
            assert code == 0
            wait_until(lambda: old_v1 <= set(closes.closed_at), timeout=10, what="every old v1 connection to close")
        assert closes.problems == []
        assert set(closes.closed_at) == old_v1, {i: live.backends[i] for i in closes.closed_at}
        assert len(new) == NEW
        survivors = [i for i in range(len(live.socks)) if i not in old_v1]
        for i in survivors:
            line = f"final-{i}"
            assert live._exchange(i, line) == f"{live.backends[i]} {line}", f"connection {i} ({live.backends[i]})"
        assert_closed_uniformly(envoy, [closes.closed_at[i] for i in sorted(old_v1)], start, OVER)
    finally:
        live.close()
