"""A small, fast echo backend for the data-path benchmark: one process, epoll, non-blocking, big buffers.

``python bench/echoserver.py PORTFILE`` binds 127.0.0.1:0, writes the port to PORTFILE, echoes until killed.
Echoes whatever arrives (no line framing), so it serves both the connection-rate and the throughput tests.
"""

from __future__ import annotations

import selectors
import socket
import sys
from pathlib import Path


def main() -> None:
    sel = selectors.DefaultSelector()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(4096)
    server.setblocking(False)
    sel.register(server, selectors.EVENT_READ, None)
    pending: dict[socket.socket, bytes] = {}
    Path(sys.argv[1]).write_text(str(server.getsockname()[1]))
    while True:
        for key, events in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is server:
                try:
                    while True:
                        conn, _ = server.accept()
                        conn.setblocking(False)
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        sel.register(conn, selectors.EVENT_READ, None)
                except BlockingIOError:
                    pass
                continue
            if events & selectors.EVENT_WRITE and sock in pending:
                try:
                    sent = sock.send(pending[sock])
                except OSError:
                    sent = -1
                if sent < 0:
                    pending.pop(sock, None)
                    sel.unregister(sock)
                    sock.close()
                    continue
                rest = pending[sock][sent:]
                if rest:
                    pending[sock] = rest
                    continue
                del pending[sock]
                sel.modify(sock, selectors.EVENT_READ)
                continue
            if sock in pending:
                continue  # still writing: read more only once the backlog is out (keeps the order)
            try:
                data = sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                pending.pop(sock, None)
                sel.unregister(sock)
                sock.close()
                continue
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                sel.unregister(sock)
                sock.close()
                continue
            if sent < len(data):
                pending[sock] = data[sent:]
                sel.modify(sock, selectors.EVENT_WRITE)  # back-pressure: stop reading until this is written


if __name__ == "__main__":
    main()
