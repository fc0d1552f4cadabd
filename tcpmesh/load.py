"""`tcpmesh load URL -c N -n M`: a bounded HTTP load generator, fortio's ``load -c N -qps 0 -n M`` for seed
001's circuit-breaking step.

``concurrency`` workers each keep one HTTP/1.1 connection alive (a new one after the server closes it or an
error) and take requests from a shared count until exactly ``count`` were sent or the time budget is spent.
Replies are tallied by status code; 503s that carry ``x-envoy-overloaded`` (Envoy's circuit breaker) are
counted apart, beside the sockets opened (fortio's "Sockets used").
"""

from __future__ import annotations

import argparse
import collections
import http.client
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["MAX_CONCURRENCY", "MAX_COUNT", "LoadResult", "add_arguments", "curl", "http_load", "run"]

MAX_COUNT = 100_000
MAX_CONCURRENCY = 256
OVERLOADED_HEADER = "x-envoy-overloaded"


@dataclass
class LoadResult:
    codes: collections.Counter[int] = field(default_factory=collections.Counter)
    """Replies by HTTP status."""
    overloaded: int = 0
    """Replies carrying ``x-envoy-overloaded`` (a circuit breaker's local 503)."""
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    """Requests without a reply, by exception type (and ``not sent: time budget spent``)."""
    sockets: int = 0
    elapsed: float = 0.0

    @property
    def answered(self) -> int:
        return sum(self.codes.values())

    def lines(self) -> list[str]:
        total = self.answered + sum(self.failures.values())
        out = [f"Code {code} : {n} ({100 * n / total:.1f} %)" for code, n in sorted(self.codes.items())]
        out += [f"Failed : {n} ({reason})" for reason, n in sorted(self.failures.items())]
        out.append(f"Overloaded (x-envoy-overloaded) : {self.overloaded}")
        out.append(f"Sockets used: {self.sockets}")
        rate = self.answered / self.elapsed if self.elapsed > 0 else 0.0
        out.append(f"All done {total} calls in {self.elapsed:.3f} s, {rate:.1f} qps")
        return out


class _Run:
    """The shared state of one load run: requests left, the tallies, the deadline."""

    def __init__(self, count: int, budget: float) -> None:
        self.lock = threading.Lock()
        self.left = count
        self.result = LoadResult()
        self.deadline = time.monotonic() + budget

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            if time.monotonic() > self.deadline:
                self.result.failures["not sent: time budget spent"] += 1
                return False
            return True

    def expire(self) -> None:
        """Requests never taken once the budget is spent are counted as not sent."""
        with self.lock:
            if self.left > 0:
                self.result.failures["not sent: time budget spent"] += self.left
                self.left = 0


def _worker(run: _Run, host: str, port: int, target: str, headers: dict[str, str], timeout: float) -> None:
    conn: http.client.HTTPConnection | None = None
    try:
        while run.take():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                    conn.connect()
                    with run.lock:
                        run.result.sockets += 1
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                response.read()
                overloaded = response.getheader(OVERLOADED_HEADER) is not None
                with run.lock:
                    run.result.codes[response.status] += 1
                    run.result.overloaded += overloaded
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with run.lock:
                    run.result.failures[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()


def http_load(
    host: str,
    port: int,
    *,
    path: str = "/",
    concurrency: int = 1,
    count: int = 100,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    budget: float = 60.0,
) -> LoadResult:
    """Send ``count`` GETs over ``concurrency`` kept-alive connections at full speed; never longer than
    ``budget`` seconds (plus one request ``timeout``)."""
    if not 1 <= count <= MAX_COUNT or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"count must be 1..{MAX_COUNT} and concurrency 1..{MAX_CONCURRENCY}")
    run = _Run(count, budget)
    started = time.monotonic()
    workers = [
        threading.Thread(
            target=_worker, args=(run, host, port, path, dict(headers or {}), timeout), name="tcpmesh-load", daemon=True
        )
        for _ in range(min(concurrency, count))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        # A worker is at most one request past the deadline; a stuck one is left behind, not waited for.
        worker.join(timeout=max(run.deadline - time.monotonic(), 0) + timeout + 1)
    run.expire()
    with run.lock:
        result = run.result
        result.elapsed = time.monotonic() - started
        return result


def _url(text: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected http://HOST[:PORT]/PATH, got {text!r}")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid port in {text!r}") from exc
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, target


def _bounded(name: str, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if not 1 <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be 1..{high}")
        return value

    return parse


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url", type=_url, metavar="URL", help="http://HOST[:PORT]/PATH (e.g. http://127.0.0.1:8080/get)"
    )
    parser.add_argument("-c", "--concurrency", type=_bounded("-c", MAX_CONCURRENCY), default=1, help="connections")
    parser.add_argument("-n", "--count", type=_bounded("-n", MAX_COUNT), default=100, help="requests in all")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for the whole run (default 60)")
    parser.add_argument("--header", "-H", type=_header, action="append", default=[], help="a header 'Name: value'")
    parser.add_argument("--curl", action="store_true", help="one request, printed with its headers (fortio -curl)")


def curl(host: str, port: int, target: str, headers: dict[str, str], timeout: float) -> int:
    """fortio's ``load -curl``: one GET, its status line, headers and body printed; 0 for a 2xx."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        print(f"tcpmesh load --curl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(f"HTTP/{response.version // 10}.{response.version % 10} {response.status} {response.reason}")
    for name, value in response.getheaders():
        print(f"{name}: {value}")
    print()
    print(body.decode(errors="replace"))
    return 0 if 200 <= response.status < 300 else 1


def run(args: argparse.Namespace) -> int:
    host, port, target = args.url
    if args.curl:
        return curl(host, port, target, dict(args.header), args.timeout)
    print(f"{args.count} calls over {args.concurrency} connections to http://{host}:{port}{target}")
    result = http_load(
        host,
        port,
        path=target,
        concurrency=args.concurrency,
        count=args.count,
        headers=dict(args.header),
        timeout=args.timeout,
        budget=args.budget,
    )
    for line in result.lines():
        print(line)
    if not result.answered:
        print("tcpmesh load: no request was answered", file=sys.stderr)
        return 1
    return 0
