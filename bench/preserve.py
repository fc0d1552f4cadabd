"""Route changes under live connections: the ECDS default against istiod's inline form (--inline-weights).

A local mesh (control plane, Envoy gateway, tcp-echo v1/v2 pods) per mode; ``LIVE`` connections stay open while
the route flips between all-v1 and all-v2. Per change: apply → the first new connection answered by the new
version (p50/p99), and how many of the live connections were cut once Envoy finished draining. Envoy runs
with `tcpmesh up`'s 1 s drain time; Istio's 45 s only delays the same cut.
"""

from __future__ import annotations

import random
import socket
import tempfile
import time
from pathlib import Path

from common import ROOT, Recorder, deadline, median, parse_args, percentile

from tcpmesh.apiclient import request_json
from tcpmesh.runtime.local import LocalMesh, MeshPorts
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_port

SAMPLE = ROOT / "samples" / "tcp-echo"
SHIFT = ROOT / "samples" / "tcp-echo-shift" / "tcp-echo-20-v2.yaml"


def _exchange(port: int, line: str = "hello") -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(line.encode() + b"\n")
        return sock.makefile("rb").readline().decode().strip()


def _route(port: int, v1: int) -> str:
    return (
        SHIFT.read_text()
        .replace("31400", str(port))
        .replace("weight: 80", f"weight: {v1}")
        .replace("weight: 20", f"weight: {100 - v1}")
    )


class _Live:
    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.conns: list[tuple[socket.socket, object]] = []
        for _ in range(count):
            self.conns.append(self._open())

    def _open(self) -> tuple[socket.socket, object]:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        reader = sock.makefile("rb")
        sock.sendall(b"open\n")
        reader.readline()
        return sock, reader

    def lost(self) -> int:
        """Connections that no longer echo; each is replaced by a new one so the count stays the same."""
        lost = 0
        for i, (sock, reader) in enumerate(self.conns):
            try:
                sock.sendall(b"ping\n")
                ok = bool(reader.readline())  # type: ignore[attr-defined]
            except OSError:
                ok = False
            if not ok:
                lost += 1
                sock.close()
                self.conns[i] = self._open()
        return lost

    def close(self) -> None:
        for sock, _ in self.conns:
            sock.close()


def _no_drains(mesh: LocalMesh) -> bool:
    stats = mesh.envoys[0].stats(filter="listener_manager.total_(filter_chains|listeners)_draining")
    return all(v == 0 for v in stats.values())


def run_mode(mode: str, changes: int, live_count: int, rec: Recorder) -> None:
    args = ("--inline-weights",) if mode == "inline" else ()
    with tempfile.TemporaryDirectory(prefix="tcpmesh-preserve-") as tmp:
        rnd = random.Random()
        mesh = LocalMesh(
            Path(tmp) / "state",
            MeshPorts.free(),
            pod_network=f"127.{rnd.randrange(100, 250)}.{rnd.randrange(1, 250)}.0",
            control_plane_args=args,
        )
        port = free_port()
        inputs = Path(tmp) / "input"
        inputs.mkdir()
        for f in SAMPLE.glob("*.yaml"):
            (inputs / f.name).write_text(f.read_text().replace("31400", str(port)))
        try:
            mesh.start(sorted(inputs.iterdir()))
            live = _Live(port, live_count)
            latencies: list[float] = []
            lost: list[int] = []
            over = deadline(240)
            for i in range(changes):
                if over():
                    break
                v1 = 0 if i % 2 == 0 else 100
                want = "one" if v1 else "two"
                t0 = time.perf_counter()
                code, payload = request_json(
                    mesh.control_plane.http,
                    "/api/apply?source=bench",
                    body=_route(port, v1).encode(),
                    token=mesh.control_plane.token,
                )
                assert code == 200, payload
                wait_until(lambda w=want: _exchange(port).startswith(w), timeout=30, interval=0.005, what="new split")
                latencies.append(time.perf_counter() - t0)
                wait_until(lambda: _no_drains(mesh), timeout=30, interval=0.05, what="drains to finish")
                lost.append(live.lost())
            live.close()
        finally:
            mesh.stop()
    note = f"{len(latencies)} changes, {live_count} live connections"
    rec.add(f"{mode}: apply -> new connections on new split p50", median(latencies) * 1000, "ms", note=note)
    rec.add(f"{mode}: apply -> new connections on new split p99", percentile(latencies, 99) * 1000, "ms")
    per_change = sum(lost) / max(1, len(lost))
    rec.add(
        f"{mode}: live connections lost per change",
        per_change,
        f"of {live_count}",
        target="0" if mode == "ecds" else "",
        met=(per_change == 0) if mode == "ecds" else None,
    )


def main() -> None:
    args = parse_args(__doc__ or "")
    rec = Recorder("preserve")
    changes = 6 if args.quick else 20
    for mode in ("ecds", "inline"):
        run_mode(mode, changes, 20, rec)


if __name__ == "__main__":
    main()
