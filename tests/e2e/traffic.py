"""Client side of the end-to-end tests: real TCP connections through Envoy, counted and tested statistically."""

from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Iterable

from scipy.stats import binomtest

__all__ = ["LoadLoop", "assert_split", "exchange", "replies"]

# A split is rejected only if this unlikely under the configured weights: about 1 false failure in 10^5 runs.
SIGNIFICANCE = 1e-5


def exchange(port: int, line: bytes = b"hello\n", host: str = "127.0.0.1", timeout: float = 5.0) -> str:
    """One connection: send a line, return the first line of the reply (tcp-echo answers "<prefix> hello")."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(line)
        reader = sock.makefile("rb")
        return reader.readline().decode().strip()


def replies(port: int, count: int) -> collections.Counter[str]:
    return collections.Counter(exchange(port) for _ in range(count))


def assert_split(counts: collections.Counter[str], expected: dict[str, float]) -> None:
    """Every reply is one of the expected ones, and each share is consistent with its weight (binomial test)."""
    total = sum(counts.values())
    assert set(counts) <= set(expected), f"unexpected replies: {counts}"
    for reply, share in expected.items():
        hits = counts.get(reply, 0)
        if share in (0.0, 1.0):
            assert hits == round(share * total), f"{reply!r}: {hits}/{total}, expected share {share}"
            continue
        p = binomtest(hits, total, share).pvalue
        assert p > SIGNIFICANCE, f"{reply!r}: {hits}/{total} is not consistent with share {share} (p={p:.2g})"


class LoadLoop:
    """Connections back to back from a thread, bounded in count and time; records every failure."""

    def __init__(self, port: int, *, max_connections: int = 20_000, max_seconds: float = 60.0) -> None:
        self.port = port
        self.max_connections = max_connections
        self.max_seconds = max_seconds
        self.ok: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.max_connections):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            try:
                reply = exchange(self.port, timeout=5)
            except OSError as exc:
                self.failures.append(repr(exc))
                continue
            if reply:
                self.ok[reply] += 1
            else:
                self.failures.append("connection closed without a reply")

    def __enter__(self) -> LoadLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def total(self) -> int:
        return sum(self.ok.values()) + len(self.failures)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        start = self.total
        while self.total - start < count:
            assert time.monotonic() < deadline, f"load loop made {self.total - start}/{count} connections"
            time.sleep(0.01)


def shares(names: Iterable[str], weights: Iterable[float]) -> dict[str, float]:
    pairs = list(zip(names, weights, strict=True))
    total = sum(w for _, w in pairs)
    return {n: w / total for n, w in pairs}
