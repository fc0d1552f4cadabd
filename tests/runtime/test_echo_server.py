"""The echo servers answer like the seeds' images: istio/tcp-echo-server and the tcptest banner server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpmesh.echo import (
    BackgroundEchoServer,
    BannerInfo,
    EchoServer,
    EchoSettings,
    echo_settings_for_container,
    serve_echo,
)
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_port

from .netutil import connect, exchange, recv_exactly, recv_until_eof

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
SEED_BANNER = BannerInfo(
    node="cn-beijing.i-2zeij4aznsu1dvd4mj5c",
    pod="tcp-echo-v1-7c775f57c9-frprp",
    namespace="default",
    ip="172.16.2.90",
    service="default",
)
SEED_GREETING = (
    b"Welcome, you are connected to node cn-beijing.i-2zeij4aznsu1dvd4mj5c.\n"
    b"Running on Pod tcp-echo-v1-7c775f57c9-frprp.\n"
    b"In namespace default.\n"
    b"With IP address 172.16.2.90.\n"
    b"Service default.\n"
)


@pytest.fixture
def echo_one() -> Iterator[BackgroundEchoServer]:
    with BackgroundEchoServer(HOST, [0, 0, 0], prefix="one") as server:
        yield server


@pytest.fixture
def banner_server() -> Iterator[BackgroundEchoServer]:
    with BackgroundEchoServer(HOST, [0], banner=SEED_BANNER) as server:
        yield server


# -- tcp-echo-server (seed 000) ----------------------------------------------------------------------------


def test_tcp_echo_prefixes_the_line_like_the_seed(echo_one: BackgroundEchoServer) -> None:
    # `echo hello | nc tcp-echo 9000` → "one hello"
    assert exchange(HOST, echo_one.ports[0], b"hello\n") == b"one hello\n"


def test_tcp_echo_answers_on_every_port(echo_one: BackgroundEchoServer) -> None:
    assert len(set(echo_one.ports)) == 3
    for port in echo_one.ports:
        assert exchange(HOST, port, f"to {port}\n".encode()) == f"one to {port}\n".encode()


def test_tcp_echo_answers_each_line_of_a_conversation(echo_one: BackgroundEchoServer) -> None:
    with connect(HOST, echo_one.ports[0]) as sock:
        for word in (b"world", b"again"):
            sock.sendall(word + b"\n")
            assert recv_exactly(sock, len(b"one \n") + len(word)) == b"one " + word + b"\n"


def test_tcp_echo_reassembles_lines_split_across_segments(echo_one: BackgroundEchoServer) -> None:
    with connect(HOST, echo_one.ports[0]) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in (b"hel", b"lo\nwor", b"ld\n\n"):
            sock.sendall(piece)
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_eof(sock) == b"one hello\none world\none \n"


def test_tcp_echo_drops_an_unterminated_final_line_like_go_readbytes(echo_one: BackgroundEchoServer) -> None:
    # ReadBytes returns ("b", io.EOF); the Go server writes nothing on error, then closes.
    assert exchange(HOST, echo_one.ports[0], b"a\nb") == b"one a\n"
    assert exchange(HOST, echo_one.ports[0], b"no newline at all") == b""


def test_tcp_echo_keeps_bytes_verbatim(echo_one: BackgroundEchoServer) -> None:
    payload = "héllo\r\x00\xff".encode("latin-1") + b"\n"
    assert exchange(HOST, echo_one.ports[0], payload) == b"one " + payload


def test_tcp_echo_serves_many_concurrent_clients() -> None:
    clients = 200

    async def client(port: int, i: int) -> bytes:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(f"client {i}\n".encode())
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    async def scenario() -> list[bytes]:
        async with EchoServer(HOST, [0, 0], prefix="two") as server, asyncio.timeout(30):
            return await asyncio.gather(*(client(server.ports[i % 2], i) for i in range(clients)))

    replies = asyncio.run(scenario())
    assert replies == [f"two client {i}\n".encode() for i in range(clients)]


def test_stop_closes_open_connections() -> None:
    server = BackgroundEchoServer(HOST, [0], prefix="one")
    server.start()
    try:
        sock = connect(HOST, server.ports[0])
        sock.sendall(b"x\n")
        assert recv_exactly(sock, 6) == b"one x\n"
    finally:
        server.stop()
    with sock:
        assert recv_until_eof(sock) == b""


def test_serve_echo_sets_ready_and_stops_on_cancel() -> None:
    port = free_port(HOST)

    async def scenario() -> bytes:
        ready = asyncio.Event()
        task = asyncio.create_task(serve_echo(HOST, [port], prefix="one", banner=None, ready=ready))
        async with asyncio.timeout(10):
            await ready.wait()
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"hi\n")
            reply = await reader.readline()
            writer.close()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return reply

    assert asyncio.run(scenario()) == b"one hi\n"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=5).close()


def test_server_needs_exactly_one_mode() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        EchoServer(HOST, [0])
    with pytest.raises(ValueError, match="exactly one"):
        EchoServer(HOST, [0], prefix="one", banner=BannerInfo())


def test_port_in_use_is_reported_and_nothing_stays_bound() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = free_port(HOST)
        server = EchoServer(HOST, [free, busy], prefix="one")
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            asyncio.run(server.start())
    with socket.socket() as probe:
        probe.bind((HOST, free))  # the first port was released again


# -- banner server (seed 004) ------------------------------------------------------------------------------


def test_banner_greets_like_the_seed_then_echoes_unchanged(banner_server: BackgroundEchoServer) -> None:
    with connect(HOST, banner_server.ports[0]) as sock:
        assert recv_exactly(sock, len(SEED_GREETING)) == SEED_GREETING
        for line in (b"hello, app1\n", b"continue..\n"):
            sock.sendall(line)
            assert recv_exactly(sock, len(line)) == line


def test_banner_leaves_out_empty_fields() -> None:
    assert BannerInfo(node="EchoNode").greeting() == b"Welcome, you are connected to node EchoNode.\n"
    assert BannerInfo().greeting() == b""


def test_banner_echoes_an_unterminated_tail(banner_server: BackgroundEchoServer) -> None:
    # The original echoes each Read as it comes, so unlike tcp-echo the tail without "\n" comes back.
    reply = exchange(HOST, banner_server.ports[0], b"partial")
    assert reply == SEED_GREETING + b"partial"


def test_banner_logs_each_receipt_with_a_connection_id(
    banner_server: BackgroundEchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tcpmesh.echo")
    with connect(HOST, banner_server.ports[0]) as sock:
        recv_exactly(sock, len(SEED_GREETING))
        sock.sendall(b"hello, app1\n")
        recv_exactly(sock, 12)
    messages = [r.getMessage() for r in caplog.records if "Received" in r.getMessage()]
    assert len(messages) == 2
    conn_id, _, raw = messages[0].partition(" - ")
    assert raw == "Received Raw Data: [104 101 108 108 111 44 32 97 112 112 49 10]"  # bytes from the seed
    assert messages[1] == f"{conn_id} - Received Data (converted to string): hello, app1"
    assert str(uuid.UUID(conn_id)) == conn_id


def test_banner_info_from_the_originals_environment() -> None:
    env = {"NODE_NAME": "n", "POD_NAME": "p", "POD_NAMESPACE": "ns", "POD_IP": "10.0.0.1", "SERVICE_ACCOUNT": "sa"}
    assert BannerInfo.from_env(env) == BannerInfo(node="n", pod="p", namespace="ns", ip="10.0.0.1", service="sa")


# -- container → settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "args", "ports", "env", "expected"),
    [
        pytest.param(
            "docker.io/istio/tcp-echo-server:1.2",
            ["9000,9001,9002", "one"],
            [9000, 9001],
            None,
            EchoSettings(mode="prefix", ports=(9000, 9001, 9002), prefix="one"),
            id="istio-sample-listens-on-all-arg-ports",
        ),
        pytest.param(
            "istio/tcp-echo-server:1.3",
            [],
            [],
            None,
            EchoSettings(mode="prefix", ports=(9000,), prefix="hello"),
            id="image-default-cmd",
        ),
        pytest.param(
            "registry.cn-hangzhou.aliyuncs.com/wangxining/tcptest:0.1",
            [],
            [3333],
            None,
            EchoSettings(mode="banner", ports=(3333,)),
            id="tcptest-container-port",
        ),
        pytest.param(
            "example.com/Istio-TCPRoute-Sample:latest",
            [],
            [3333],
            {"TCP_PORT": "4444"},
            EchoSettings(mode="banner", ports=(4444,)),
            id="tcp-port-env-wins",
        ),
        pytest.param(
            "wangxining/tcptest:0.1", [], [], None, EchoSettings(mode="banner", ports=(1025,)), id="binary-default"
        ),
        pytest.param("nginx:1.25", [], [80], None, None, id="unknown-image"),
    ],
)
def test_echo_settings_for_container(
    image: str, args: list[str], ports: list[int], env: dict[str, str] | None, expected: EchoSettings | None
) -> None:
    assert echo_settings_for_container(image, args, ports, env=env) == expected


def test_echo_settings_reject_bad_port_args() -> None:
    with pytest.raises(ValueError, match="invalid port"):
        echo_settings_for_container("istio/tcp-echo-server:1.2", ["9000,http", "one"], [9000])


# -- CLI -----------------------------------------------------------------------------------------------------


def test_cli_runs_on_a_pod_address_and_stops_cleanly_on_sigterm() -> None:
    host = "127.0.1.2"  # a "pod IP" on loopback, as `tcpmesh up` assigns them
    port = free_port(host)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpmesh.echo", "--host", host, "--ports", str(port), "--prefix", "one"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        reply = wait_until(
            lambda: exchange(host, port, b"hello\n"), timeout=15, what="echo CLI answering", ignore=(OSError,)
        )
        assert reply == b"one hello\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None
    log = proc.stdout.read().decode()
    assert f"listening on {host}:{port}, prefix: one" in log
