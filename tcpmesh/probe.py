"""`tcpmesh probe HOST:PORT`: the seeds' `nc` loop, built in — N connections, replies tallied by first word.

Each connection sends one line and reads the first line back; tcp-echo answers ``<prefix> <line>``, so the first
word names the version (``one``/``two``). The split is printed with a 95 % Wilson score interval per version, the
interval a weight should fall in if the proxy splits as configured.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import math
import socket
import sys
import time
from dataclasses import dataclass

__all__ = ["Tally", "add_arguments", "http_probe", "probe", "run", "wilson_interval"]

Z_95 = 1.959963984540054
MAX_COUNT = 100_000


def wilson_interval(hits: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (good near 0 and 1, unlike the normal approximation)."""
    if total <= 0:
        return 0.0, 1.0
    p = hits / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Tally:
    replies: collections.Counter[str]
    failures: collections.Counter[str]

    @property
    def answered(self) -> int:
        return sum(self.replies.values())

    def lines(self) -> list[str]:
        total = self.answered
        out = []
        for word, hits in sorted(self.replies.items(), key=lambda kv: (-kv[1], kv[0])):
            low, high = wilson_interval(hits, total)
            share = f"{100 * hits / total:5.1f}%"
            out.append(f"  {word:<12} {hits:>6}  {share}   95% interval {100 * low:5.1f}% – {100 * high:5.1f}%")
        for reason, count in sorted(self.failures.items()):
            out.append(f"  failed       {count:>6}  {reason}")
        return out


def _one(host: str, port: int, line: bytes, timeout: float) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(line)
        reply = sock.makefile("rb").readline().decode(errors="replace").strip()
    if not reply:
        raise ConnectionError("closed without a reply")
    return reply.split(None, 1)[0]


def probe(
    host: str, port: int, count: int, line: bytes = b"hello\n", timeout: float = 5.0, budget: float = 300.0
) -> Tally:
    """Open ``count`` connections one after another (bounded by ``budget`` seconds in all)."""
    tally = Tally(collections.Counter(), collections.Counter())
    end = time.monotonic() + budget
    for _ in range(count):
        if time.monotonic() > end:
            tally.failures["not tried: time budget spent"] += 1
            continue
        try:
            tally.replies[_one(host, port, line, timeout)] += 1
        except (OSError, ConnectionError) as exc:
            tally.failures[type(exc).__name__ + (f": {exc.strerror}" if getattr(exc, "strerror", None) else "")] += 1
    return tally


def _version_of(body: bytes) -> str:
    """The ``version`` an HTTP echo (echo_http.py) names in its JSON reply."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ConnectionError("reply is not an HTTP echo's JSON") from exc
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str):
        raise ConnectionError("reply names no version")
    return version


def http_probe(
    host: str,
    port: int,
    count: int,
    *,
    path: str = "/",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    budget: float = 300.0,
) -> Tally:
    """Send ``count`` GET requests one after another on a kept-alive connection (a new one after any error);
    200 replies are tallied by the echo's version, other statuses as failures ``HTTP <status>``."""
    tally = Tally(collections.Counter(), collections.Counter())
    end = time.monotonic() + budget
    conn: http.client.HTTPConnection | None = None
    try:
        for _ in range(count):
            if time.monotonic() > end:
                tally.failures["not tried: time budget spent"] += 1
                continue
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request("GET", path, headers=headers or {})
                response = conn.getresponse()
                body = response.read()
                if response.status == 200:
                    tally.replies[_version_of(body)] += 1
                else:
                    tally.failures[f"HTTP {response.status}"] += 1
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, ConnectionError, http.client.HTTPException) as exc:
                tally.failures[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()
    return tally


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"--count must be 1..{MAX_COUNT}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", type=_address, metavar="HOST:PORT", help="where to connect (e.g. 127.0.0.1:31400)")
    parser.add_argument("--count", "-c", type=_count, default=100, help="connections to open (default 100)")
    parser.add_argument("--send", default="hello", help="the line each connection sends (default hello)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per connection (default 5)")
    parser.add_argument(
        "--http", action="store_true", help="send HTTP GETs and count the HTTP echo's versions (and other statuses)"
    )
    parser.add_argument("--path", default="/", help="--http: the request path (default /)")
    parser.add_argument(
        "--header", "-H", type=_header, action="append", default=[], help="--http: a request header 'Name: value'"
    )


def run(args: argparse.Namespace) -> int:
    host, port = args.address
    if args.http:
        tally = http_probe(host, port, args.count, path=args.path, headers=dict(args.header), timeout=args.timeout)
        what = "requests"
    else:
        tally = probe(host, port, args.count, args.send.encode() + b"\n", args.timeout)
        what = "connections"
    failed = sum(tally.failures.values())
    print(f"{args.count} {what} to {host}:{port}: {tally.answered} answered, {failed} failed")
    for line in tally.lines():
        print(line)
    if not tally.answered:
        print("tcpmesh probe: no connection was answered", file=sys.stderr)
        return 1
    return 0
