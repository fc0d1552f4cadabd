"""Loopback backends for the TLS and traffic-policy end-to-end tests: line servers (optionally TLS) in threads,
a throwaway test PKI made with the ``openssl`` CLI, and TLS clients that send SNI."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Backend", "Pki", "closed_without_reply", "make_pki", "tls_exchange"]


class Backend:
    """Answers each line with ``<name> <line>`` and keeps the connection open until the peer closes it."""

    def __init__(self, name: str, context: ssl.SSLContext | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.name = name
        self.context = context
        self.sock = socket.create_server((host, port))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            reader = conn.makefile("rb")
            for line in reader:
                conn.sendall(self.name.encode() + b" " + line)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def kill(self) -> None:
        """Stop listening: new connections are refused (shutdown wakes the blocked accept)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx

    def client_context(self, *, with_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if with_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_pki(directory: Path, server_names: list[str]) -> Pki:
    """A test CA, one server certificate for ``server_names`` and one client certificate (EC P-256)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=tcpmesh test CA",
    )  # fmt: skip
    issued = {}
    for role, names in (("server", server_names), ("client", ["client.example.com"])):
        key, csr, cert, ext = (directory / f"{role}.{s}" for s in ("key", "csr", "pem", "ext"))
        usage = "serverAuth" if role == "server" else "clientAuth"
        ext.write_text(f"subjectAltName={','.join('DNS:' + n for n in names)}\nextendedKeyUsage={usage}\n")
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={names[0]}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext,
        )  # fmt: skip
        issued[role] = (cert, key)
    return Pki(ca, *issued["server"], *issued["client"])


def tls_exchange(port: int, server_name: str, context: ssl.SSLContext, line: bytes = b"hello\n") -> str:
    """One TLS connection with SNI ``server_name``: send a line, return the first reply line ("" if closed)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as sock,
    ):
        sock.sendall(line)
        return sock.makefile("rb").readline().decode().strip()


def closed_without_reply(sock: socket.socket) -> bool:
    """True when the peer closes (FIN or RST) before sending anything; the socket timeout bounds the wait."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
