"""An HTTP echo backend standing in for the seeds' HTTP services (Bookinfo's ``reviews`` versions).

Every request, any method and path, is answered ``200`` with a JSON body naming the backend's version and pod
and echoing the request line and headers (names lower-cased), and an ``x-echo-version`` header; a request body
is read (at most :data:`MAX_BODY` bytes) and dropped. HTTP/1.1 with keep-alive, as Envoy's upstream pools expect.
A path ``/delay/<seconds>`` (httpbin's form) is answered that late, at most :data:`MAX_DELAY_S`: a slow backend
for route timeouts.

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

__all__ = ["MAX_BODY", "MAX_DELAY_S", "VERSION_HEADER", "HttpEchoServer", "serve_until_signal"]

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
VERSION_HEADER = "x-echo-version"
MAX_DELAY_S = 10.0
_DELAY_PATH = re.compile(r"^/delay/(\d+(?:\.\d+)?)(?:[/?]|$)")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.send_error(413, "request body too large")
            return
        if length:
            self.rfile.read(length)
        delay = _DELAY_PATH.match(self.path)
        if delay:
            self.server.stopping.wait(min(float(delay.group(1)), MAX_DELAY_S))  # stop() cuts it short
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
        self.send_response(200)
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

    def __init__(self, address: tuple[str, int], version: str, pod: str) -> None:
        self.version = version
        self.pod = pod
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("request from %s failed", client_address, exc_info=True)  # a client gone away: not ours to print


class HttpEchoServer:
    """HTTP echo on ``host`` and each of ``ports`` (0 binds an ephemeral port; :attr:`ports` says which)."""

    def __init__(self, host: str, ports: Sequence[int], *, version: str, pod: str = "") -> None:
        if not ports:
            raise ValueError("at least one port is required")
        self.host, self.requested_ports, self.version, self.pod = host, tuple(ports), version, pod
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(s.server_address[1] for s in self._servers)

    def start(self) -> tuple[int, ...]:
        try:
            for port in self.requested_ports:
                server = _Server((self.host, port), self.version, self.pod)
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


def serve_until_signal(host: str, ports: Sequence[int], *, version: str, pod: str) -> int:
    """``tcpmesh echo --http``: serve until SIGTERM or SIGINT; 1 if a port cannot be bound."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with HttpEchoServer(host, ports, version=version, pod=pod):
            stop.wait()
            log.info("stopping HTTP echo server")
    except OSError as exc:
        log.error("HTTP echo server failed: %s", exc)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
