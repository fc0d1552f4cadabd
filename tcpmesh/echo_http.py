"""An HTTP echo backend standing in for the seeds' HTTP services (Bookinfo's ``reviews`` versions).

Every request, any method and path, is answered ``200`` with a JSON body naming the backend's version and pod
and echoing the request line and headers (names lower-cased), and an ``x-echo-version`` header; a request body
is read (at most :data:`MAX_BODY` bytes) and dropped. HTTP/1.1 with keep-alive, as Envoy's upstream pools expect.
Two paths behave like httpbin's (seed 001's circuit-breaking backend): ``/delay/<seconds>`` answers after that
long (at most :data:`MAX_DELAY` s, fractions allowed; a stop cuts the wait short), so concurrent requests
overlap; ``/status/<code>`` answers with that status (200..599). A server started with ``status``
(``--status 500``) answers every other request with it: a failing backend for outlier detection.

:class:`HttpEchoServer` serves several ports from threads; ``tcpmesh echo --http --prefix v1`` runs one from
the command line (echo.py dispatches to :func:`serve_until_signal`).
"""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["MAX_BODY", "MAX_DELAY", "VERSION_HEADER", "HttpEchoServer", "serve_until_signal"]

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_DELAY = 10.0  # httpbin's cap
VERSION_HEADER = "x-echo-version"
_DELAY = re.compile(r"/delay/([0-9]+(?:\.[0-9]+)?)(?:[/?].*)?")
_STATUS = re.compile(r"/status/([0-9]{3})(?:[/?].*)?")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle on, the body waits for the peer's delayed ACK (~40 ms per
    # request on a kept-alive connection).
    disable_nagle_algorithm = True
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.send_error(413, "request body too large")
            return
        if length:
            self.rfile.read(length)
        status = self.server.status
        if delay := _DELAY.fullmatch(self.path):
            self.server.stopping.wait(min(float(delay.group(1)), MAX_DELAY))  # stop() cuts it short
        elif (code := _STATUS.fullmatch(self.path)) and 200 <= int(code.group(1)) <= 599:
            status = int(code.group(1))
        body = json.dumps(
            {
                "version": self.server.version,
                "pod": self.server.pod,
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            },
            sort_keys=True,
        ).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header(VERSION_HEADER, self.server.version)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a burst of connects must not fall into SYN retries

    def __init__(self, address: tuple[str, int], version: str, pod: str, status: int) -> None:
        self.version = version
        self.pod = pod
        self.status = status
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("request from %s failed", client_address, exc_info=True)  # a client gone away: not ours to print


class HttpEchoServer:
    """HTTP echo on ``host`` and each of ``ports`` (0 binds an ephemeral port; :attr:`ports` says which)."""

    def __init__(self, host: str, ports: Sequence[int], *, version: str, pod: str = "", status: int = 200) -> None:
        if not ports:
            raise ValueError("at least one port is required")
        if not 200 <= status <= 599:
            raise ValueError(f"status {status} is not 200..599")
        self.status = status
        self.host, self.requested_ports, self.version, self.pod = host, tuple(ports), version, pod
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(s.server_address[1] for s in self._servers)

    def start(self) -> tuple[int, ...]:
        try:
            for port in self.requested_ports:
                server = _Server((self.host, port), self.version, self.pod, self.status)
                self._servers.append(server)
                thread = threading.Thread(target=server.serve_forever, name="tcpmesh-http-echo", daemon=True)
                thread.start()
                self._threads.append(thread)
                log.info("HTTP echo listening on %s:%d, version %s", self.host, server.server_address[1], self.version)
        except BaseException:
            self.stop()
            raise
        return self.ports

    def stop(self) -> None:
        for server in self._servers:
            server.stopping.set()
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> HttpEchoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_until_signal(host: str, ports: Sequence[int], *, version: str, pod: str, status: int = 200) -> int:
    """``tcpmesh echo --http``: serve until SIGTERM or SIGINT; 1 if a port cannot be bound."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with HttpEchoServer(host, ports, version=version, pod=pod, status=status):
            stop.wait()
            log.info("stopping HTTP echo server")
    except OSError as exc:
        log.error("HTTP echo server failed: %s", exc)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
