"""TCP echo servers that stand in for the seeds' backend images.

Two behaviours, each reproducing a real image byte for byte:

* **prefix** — Istio's ``istio/tcp-echo-server`` (``samples/tcp-echo/src/main.go``): listens on every port of
  ``args[0]`` (comma separated) and answers each ``\\n``-terminated line with ``"<prefix> <line>"``; the line
  keeps its newline. Go's ``bufio.Reader.ReadBytes('\\n')`` returns the unterminated tail together with
  ``io.EOF``, and the server only writes when there is no error, so **a final line without a newline is never
  answered**; we do the same.
* **banner** — the ``tcptest`` server of ``osswangxining/Istio-TCPRoute-Sample``: greets with up to five lines
  naming node, pod, namespace, IP and service account (only the non-empty ones, in that order), then echoes
  whatever each ``read`` of at most 1024 bytes returns, unchanged. It is chunk based, not line based: an
  unterminated tail *is* echoed, and two lines arriving in one segment are logged as one receipt. Every receipt
  is logged with a per-connection uuid, in the original's wording.

Run it with :class:`EchoServer` (async, binds port 0 for tests), :class:`BackgroundEchoServer` (its own event
loop in a thread, for synchronous callers), :func:`serve_echo`, or the CLI (``tcpmesh echo`` via
:func:`add_arguments` / :func:`run`, or ``python -m tcpmesh.echo``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import logging
import os
import re
import signal
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tcpmesh.echo_http import serve_until_signal

__all__ = [
    "BackgroundEchoServer",
    "BannerInfo",
    "EchoServer",
    "EchoSettings",
    "add_arguments",
    "echo_settings_for_container",
    "main",
    "parse_ports",
    "run",
    "serve_echo",
]

logger = logging.getLogger(__name__)

# The Go banner server reads into a fresh 1024-byte buffer per Read; keeping the size keeps the log granularity.
BANNER_READ_SIZE = 1024
# Go's ReadBytes grows without bound; we stop a client that sends this much without a newline.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Defaults baked into the images: tcp-echo-server `CMD ["9000", "hello"]`, tcptest `TCP_PORT` unset → 1025.
TCP_ECHO_DEFAULT_ARGS = ("9000", "hello")
BANNER_DEFAULT_PORT = 1025

TCP_ECHO_IMAGE_PATTERNS = ("*tcp-echo-server*",)
BANNER_IMAGE_PATTERNS = ("*tcptest*", "*istio-tcproute-sample*")
# HTTP echo (echo_http.py): tcpmesh's own image name (args like tcp-echo: ports, version), and Bookinfo's
# service images, whose version is in the name (examples-bookinfo-reviews-v2) and which listen on 9080.
HTTP_ECHO_IMAGE_PATTERNS = ("*tcpmesh-http-echo*",)
BOOKINFO_IMAGE = re.compile(r"examples-bookinfo-[a-z]+-(v[0-9]+)")
BOOKINFO_PORT = 9080
# httpbin (seed 001's circuit-breaking backend): the HTTP echo, whose /delay/<s> and /status/<code> act like
# httpbin's; it listens on the containerPorts (the image's 80 when none are given).
HTTPBIN_IMAGE_PATTERNS = ("*httpbin*",)
HTTPBIN_PORT = 80


@dataclass(frozen=True, kw_only=True, slots=True)
class BannerInfo:
    """What the banner server says about itself; empty fields are left out of the greeting, as in the original.

    ``service`` is printed as ``Service <service>.``; the original fills it from the pod's service account
    (``SERVICE_ACCOUNT`` ← ``spec.serviceAccountName``), which is why the seed shows ``Service default.``.
    """

    node: str = ""
    pod: str = ""
    namespace: str = ""
    ip: str = ""
    service: str = ""

    def greeting(self) -> bytes:
        """Return the banner exactly as the Go server builds it."""
        parts = (
            ("Welcome, you are connected to node {}.\n", self.node),
            ("Running on Pod {}.\n", self.pod),
            ("In namespace {}.\n", self.namespace),
            ("With IP address {}.\n", self.ip),
            ("Service {}.\n", self.service),
        )
        return "".join(fmt.format(value) for fmt, value in parts if value).encode()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BannerInfo:
        """Read the environment variables the original image reads (its Deployment fills them by fieldRef)."""
        env = os.environ if env is None else env
        return cls(
            node=env.get("NODE_NAME", ""),
            pod=env.get("POD_NAME", ""),
            namespace=env.get("POD_NAMESPACE", ""),
            ip=env.get("POD_IP", ""),
            service=env.get("SERVICE_ACCOUNT", ""),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class EchoSettings:
    """How to run one container's echo server: which ports and which behaviour.

    Banner details (pod, node, IP) belong to the pod, not the image, so the runtime supplies a BannerInfo.
    """

    mode: Literal["prefix", "banner", "http"]
    ports: tuple[int, ...]
    prefix: str | None = None
    """The tcp-echo prefix, or the version an HTTP echo reports."""
    status: int = 200
    """HTTP echo: the status of every reply (``ECHO_STATUS`` of a tcpmesh-http-echo container)."""


def _status(text: str | None) -> int:
    if not text:
        return 200
    if not text.strip().isdigit() or not 200 <= int(text) <= 599:
        raise ValueError(f"ECHO_STATUS {text!r} is not an HTTP status 200..599")
    return int(text)


def _status_argument(text: str) -> int:
    try:
        return _status(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an HTTP status 200..599, got {text!r}") from None


def parse_ports(text: str) -> tuple[int, ...]:
    """Parse ``"9000,9001"`` into ports; raise ValueError on anything that is not a TCP port."""
    ports: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or not 0 <= int(item) <= 65535:
            raise ValueError(f"invalid port {item!r} in {text!r}")
        ports.append(int(item))
    return tuple(ports)


def echo_settings_for_container(
    image: str,
    args: Sequence[str],
    container_ports: Sequence[int],
    *,
    env: Mapping[str, str] | None = None,
) -> EchoSettings | None:
    """Map a Deployment container to echo settings, or None for an image we do not reproduce.

    * ``*tcp-echo-server*``: ports and prefix come from ``args`` (``["9000,9001,9002", "one"]``), like the Go
      binary; it listens on every port in args even if ``containerPorts`` lists fewer (Istio's sample lists two
      of three). Missing args fall back to the image's ``CMD ["9000", "hello"]``.
    * ``*tcptest*`` / ``*Istio-TCPRoute-Sample*``: banner mode on ``TCP_PORT`` if ``env`` gives it (that is
      what the binary listens on), else on the containerPorts, else on the binary's default 1025.
    * ``*tcpmesh-http-echo*``: args like tcp-echo (ports, version); ``ECHO_STATUS`` in ``env`` (200..599) is the
      status of every reply, a failing backend for outlier detection.

    Raises ValueError when a recognised image has args it would itself reject (a non-numeric port).
    """
    name = image.lower()
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in HTTP_ECHO_IMAGE_PATTERNS):
        full = list(args) + list(TCP_ECHO_DEFAULT_ARGS[len(args) :])
        return EchoSettings(
            mode="http", ports=parse_ports(full[0]), prefix=full[1], status=_status((env or {}).get("ECHO_STATUS"))
        )
    if bookinfo := BOOKINFO_IMAGE.search(name):
        return EchoSettings(mode="http", ports=tuple(container_ports) or (BOOKINFO_PORT,), prefix=bookinfo.group(1))
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in HTTPBIN_IMAGE_PATTERNS):
        return EchoSettings(mode="http", ports=tuple(container_ports) or (HTTPBIN_PORT,), prefix="httpbin")
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in TCP_ECHO_IMAGE_PATTERNS):
        full = list(args) + list(TCP_ECHO_DEFAULT_ARGS[len(args) :])
        return EchoSettings(mode="prefix", ports=parse_ports(full[0]), prefix=full[1])
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in BANNER_IMAGE_PATTERNS):
        tcp_port = (env or {}).get("TCP_PORT", "")
        if tcp_port:
            ports = parse_ports(tcp_port)
        elif container_ports:
            ports = tuple(container_ports)
        else:
            ports = (BANNER_DEFAULT_PORT,)
        return EchoSettings(mode="banner", ports=ports)
    return None


class EchoServer:
    """An asyncio echo server on one host and several ports.

    Exactly one of ``prefix`` (tcp-echo-server behaviour) and ``banner`` (tcptest behaviour) is given.
    Port 0 binds an ephemeral port; :attr:`ports` reports what was bound, in the order asked.
    """

    def __init__(
        self,
        host: str,
        ports: Sequence[int],
        *,
        prefix: str | None = None,
        banner: BannerInfo | None = None,
    ) -> None:
        if (prefix is None) == (banner is None):
            raise ValueError("give exactly one of prefix (tcp-echo) or banner (tcptest)")
        if not ports:
            raise ValueError("at least one port is required")
        self.host = host
        self.requested_ports = tuple(ports)
        self.prefix = prefix
        self.banner = banner
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._ports: tuple[int, ...] = ()

    @property
    def ports(self) -> tuple[int, ...]:
        """The bound ports (after :meth:`start`)."""
        return self._ports

    async def start(self) -> tuple[int, ...]:
        """Bind every port; on any failure close what was bound and re-raise."""
        try:
            for port in self.requested_ports:
                # A large backlog: a burst of hundreds of connects must not fall into SYN retries.
                server = await asyncio.start_server(self._on_connect, self.host, port, backlog=1024)
                self._servers.append(server)
                bound = server.sockets[0].getsockname()[1]
                if self.prefix is not None:
                    logger.info("listening on %s:%d, prefix: %s", self.host, bound, self.prefix)
                else:
                    logger.info("Listening on TCP port %s:%d", self.host, bound)
        except BaseException:
            await self.stop()
            raise
        self._ports = tuple(s.sockets[0].getsockname()[1] for s in self._servers)
        return self._ports

    async def stop(self) -> None:
        """Stop accepting, then close open connections (the Go servers just die; we end cleanly)."""
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def __aenter__(self) -> EchoServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if self.prefix is not None:
                await _serve_prefix(reader, writer, self.prefix.encode())
            else:
                assert self.banner is not None
                await _serve_banner(reader, writer, self.banner.greeting())
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the peer went away: the Go servers ignore write errors and stop on read errors
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()


async def _serve_prefix(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, prefix: bytes) -> None:
    """Answer each complete line with ``prefix + b" " + line``; drop an unterminated tail at EOF (see module doc)."""
    pending = bytearray()
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            if pending:
                logger.debug("connection closed with %d unterminated bytes, not answered", len(pending))
            return
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            line = bytes(pending[start : end + 1])
            logger.debug("request: %r", line)
            writer.write(prefix + b" " + line)
            start = end + 1
        del pending[:start]
        if len(pending) > MAX_LINE_BYTES:
            logger.warning("closing connection: %d bytes without a newline", len(pending))
            return
        await writer.drain()


async def _serve_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, greeting: bytes) -> None:
    """Greet, then echo each read unchanged, logging it as the original does."""
    client_id = str(uuid.uuid4())
    logger.info("%s - TCP connection open.", client_id)
    try:
        writer.write(greeting)
        await writer.drain()
        while data := await reader.read(BANNER_READ_SIZE):
            # Go prints a []byte as "[104 101 ...]"; log.Printf adds no second newline after the data's own.
            logger.info("%s - Received Raw Data: [%s]", client_id, " ".join(str(b) for b in data))
            text = data.decode("utf-8", errors="replace").removesuffix("\n")
            logger.info("%s - Received Data (converted to string): %s", client_id, text)
            writer.write(data)
            await writer.drain()
    finally:
        logger.info("%s - TCP connection closed.", client_id)


async def serve_echo(
    host: str,
    ports: Sequence[int],
    *,
    prefix: str | None,
    banner: BannerInfo | None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve until cancelled; ``ready`` is set once every port is bound."""
    server = EchoServer(host, ports, prefix=prefix, banner=banner)
    await server.start()
    try:
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()  # until cancelled
    finally:
        await server.stop()


class BackgroundEchoServer:
    """An :class:`EchoServer` on its own event loop in a daemon thread, for synchronous code and tests."""

    def __init__(
        self,
        host: str,
        ports: Sequence[int],
        *,
        prefix: str | None = None,
        banner: BannerInfo | None = None,
    ) -> None:
        self.server = EchoServer(host, ports, prefix=prefix, banner=banner)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def ports(self) -> tuple[int, ...]:
        return self.server.ports

    def start(self, timeout: float = 10.0) -> tuple[int, ...]:
        """Start the loop thread and bind; raise what binding raised."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="tcpmesh-echo", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            return asyncio.run_coroutine_threadsafe(self.server.start(), loop).result(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> BackgroundEchoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tcpmesh echo``; banner fields default to the env vars the original image reads."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--ports",
        type=parse_ports,
        default=None,
        help="comma-separated ports (default: 9000 for --prefix, $TCP_PORT or 1025 for --banner)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--prefix", help="tcp-echo-server mode: answer each line with '<prefix> <line>'")
    mode.add_argument("--banner", action="store_true", help="tcptest mode: greet with a banner, echo unchanged")
    parser.add_argument(
        "--http",
        action="store_true",
        help="HTTP echo: answer each request with JSON naming the version (--prefix), pod and request headers",
    )
    parser.add_argument(
        "--status",
        type=_status_argument,
        default=200,
        help="--http: the status of every reply (200..599, default 200); a failing backend for outlier detection",
    )
    parser.add_argument("--node", default=os.environ.get("NODE_NAME", ""), help="banner: node name")
    parser.add_argument("--pod", default=os.environ.get("POD_NAME", ""), help="banner: pod name")
    parser.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", ""), help="banner: namespace")
    parser.add_argument("--ip", default=os.environ.get("POD_IP", ""), help="banner: IP address")
    parser.add_argument("--service", default=os.environ.get("SERVICE_ACCOUNT", ""), help="banner: 'Service <x>.' line")


def run(args: argparse.Namespace) -> int:
    """Run ``tcpmesh echo`` until SIGTERM or SIGINT; return the exit code."""
    if args.http:
        if args.banner:
            logger.error("--http and --banner cannot be combined")
            return 2
        version = TCP_ECHO_DEFAULT_ARGS[1] if args.prefix is None else args.prefix
        return serve_until_signal(
            args.host, args.ports or parse_ports("8080"), version=version, pod=args.pod, status=args.status
        )
    banner: BannerInfo | None = None
    prefix: str | None = args.prefix
    if args.banner:
        banner = BannerInfo(node=args.node, pod=args.pod, namespace=args.namespace, ip=args.ip, service=args.service)
        default_ports = parse_ports(os.environ.get("TCP_PORT") or str(BANNER_DEFAULT_PORT))
    else:
        prefix = TCP_ECHO_DEFAULT_ARGS[1] if prefix is None else prefix
        default_ports = parse_ports(TCP_ECHO_DEFAULT_ARGS[0])
    ports = args.ports or default_ports
    try:
        asyncio.run(_run_until_signal(args.host, ports, prefix=prefix, banner=banner))
    except OSError as exc:
        logger.error("echo server failed: %s", exc)
        return 1
    return 0


async def _run_until_signal(host: str, ports: Sequence[int], *, prefix: str | None, banner: BannerInfo | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with EchoServer(host, ports, prefix=prefix, banner=banner):
            await stop.wait()
            logger.info("stopping echo server")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tcpmesh.echo``."""
    parser = argparse.ArgumentParser(prog="tcpmesh echo", description=__doc__.splitlines()[0] if __doc__ else "")
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(message)s", stream=sys.stderr)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
