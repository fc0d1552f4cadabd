"""Load generator for the data-path benchmark (its own process).

``python bench/loadgen.py conn PORT SECONDS THREADS MAX``: connect, send a line, read the echo, close; as many as
possible for SECONDS (at most MAX connections) → {"connections": n, "errors": e, "seconds": s, "p50_ms", "p99_ms"}.
``python bench/loadgen.py bytes PORT MEGABYTES``: one connection, stream MEGABYTES through the echo and read it all
back → {"bytes": n, "seconds": s}.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time


def conn(port: int, seconds: float, threads: int, limit: int) -> dict[str, float]:
    lock = threading.Lock()
    counts = {"connections": 0, "errors": 0}
    latencies: list[float] = []
    end = time.monotonic() + seconds

    def worker() -> None:
        mine: list[float] = []
        ok = errors = 0
        while time.monotonic() < end and ok + errors < limit // threads:
            t0 = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    s.sendall(b"hello\n")
                    if not s.recv(64):
                        raise OSError("closed")
                ok += 1
                mine.append(time.perf_counter() - t0)
            except OSError:
                errors += 1
        with lock:
            counts["connections"] += ok
            counts["errors"] += errors
            latencies.extend(mine)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    latencies.sort()
    pick = (
        (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000) if latencies else (lambda q: 0.0)
    )
    return {**counts, "seconds": elapsed, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


def stream(port: int, megabytes: int) -> dict[str, float]:
    total = megabytes * 2**20
    chunk = b"x" * 262144
    received = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)

        def reader() -> None:
            nonlocal received
            while received < total:
                data = s.recv(1 << 20)
                if not data:
                    return
                received += len(data)

        t0 = time.perf_counter()
        r = threading.Thread(target=reader)
        r.start()
        sent = 0
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
        r.join(timeout=60)
        elapsed = time.perf_counter() - t0
    return {"bytes": received, "seconds": elapsed}


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "conn":
        out = conn(port, float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        out = stream(port, int(sys.argv[3]))
    print(json.dumps(out))
