"""`tcpmesh load` (the bounded HTTP load generator) against the HTTP echo's httpbin paths: real sockets, and the
CLI in a real subprocess."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time

import pytest

from tcpmesh.echo import echo_settings_for_container
from tcpmesh.echo_http import HttpEchoServer
from tcpmesh.load import http_load
from tcpmesh.runtime.pods import echo_command
from tcpmesh.translator.workloads import Pod

HOST = "127.0.0.1"


def _status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_httpbin_paths_delay_and_status() -> None:
    with HttpEchoServer(HOST, [0], version="httpbin") as server:
        port = server.ports[0]
        started = time.monotonic()
        assert _status(port, "/delay/0.3") == 200
        assert 0.3 <= time.monotonic() - started < 2.0
        assert _status(port, "/status/503") == 503
        assert _status(port, "/status/418?x=1") == 418
        assert _status(port, "/status/99") == 200  # not a status httpbin would send: echoed like any path
        assert _status(port, "/get") == 200


def test_httpbin_image_runs_as_the_http_echo() -> None:
    settings = echo_settings_for_container("docker.io/kennethreitz/httpbin", [], [8000])
    assert settings is not None
    assert (settings.mode, settings.ports) == ("http", (8000,))
    default = echo_settings_for_container("docker.io/mccutchen/go-httpbin", [], [])
    assert default is not None
    assert default.ports == (80,)


def test_failing_echo_answers_every_request_with_its_status() -> None:
    with HttpEchoServer(HOST, [0], version="bad", status=500) as server:
        assert _status(server.ports[0], "/") == 500
        assert _status(server.ports[0], "/status/200") == 200  # httpbin's path still wins
    with pytest.raises(ValueError, match=r"not 200\.\.599"):
        HttpEchoServer(HOST, [0], version="x", status=99)


def test_echo_status_comes_from_the_containers_env() -> None:
    image = "ghcr.io/example/tcpmesh-http-echo:1"
    bad = echo_settings_for_container(image, ["8000", "bad"], [8000], env={"ECHO_STATUS": "500"})
    assert bad is not None
    assert (bad.prefix, bad.status) == ("bad", 500)
    pod = Pod(name="bad-0", namespace="default", deployment="bad", labels=(), ip="127.0.1.9", containers=())
    command = echo_command(pod, bad)
    assert command[-2:] == ["--status", "500"]
    with pytest.raises(ValueError, match="ECHO_STATUS"):
        echo_settings_for_container(image, [], [], env={"ECHO_STATUS": "fine"})


def test_load_sends_exactly_count_requests_concurrently() -> None:
    with HttpEchoServer(HOST, [0], version="v1") as server:
        started = time.monotonic()
        result = http_load(HOST, server.ports[0], path="/delay/0.2", concurrency=4, count=8, budget=20)
        elapsed = time.monotonic() - started
    assert result.codes == {200: 8}
    assert result.overloaded == 0
    assert not result.failures
    assert result.sockets == 4  # one kept-alive connection per worker
    assert 0.4 <= elapsed < 1.5  # 8 requests of 0.2 s over 4 connections: two rounds, not eight


def test_load_counts_statuses_and_stops_at_the_budget() -> None:
    with HttpEchoServer(HOST, [0], version="v1") as server:
        assert http_load(HOST, server.ports[0], path="/status/503", count=5).codes == {503: 5}
        started = time.monotonic()
        result = http_load(HOST, server.ports[0], path="/delay/0.3", concurrency=2, count=100, budget=0.5)
        assert time.monotonic() - started < 3.0
    assert 2 <= result.codes[200] <= 8
    assert result.codes[200] + result.failures["not sent: time budget spent"] == 100


def test_load_reports_refused_connections() -> None:
    with HttpEchoServer(HOST, [0], version="v1") as server:
        port = server.ports[0]
    result = http_load(HOST, port, count=3, timeout=1)
    assert result.answered == 0
    assert result.failures == {"ConnectionRefusedError": 3}


def test_load_rejects_unbounded_runs() -> None:
    with pytest.raises(ValueError, match="count must be"):
        http_load(HOST, 1, count=0)
    with pytest.raises(ValueError, match="concurrency"):
        http_load(HOST, 1, concurrency=10_000)


def test_load_command_prints_fortio_like_code_counts() -> None:
    with HttpEchoServer(HOST, [0], version="v1") as server:
        url = f"http://{HOST}:{server.ports[0]}/status/503"
        out = subprocess.run(
            [sys.executable, "-m", "tcpmesh", "load", url, "-c", "2", "-n", "6"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out.returncode == 0, out.stderr
    assert "Code 503 : 6 (100.0 %)" in out.stdout
    assert "Sockets used: 2" in out.stdout


def test_load_curl_prints_one_reply_with_its_headers() -> None:
    with HttpEchoServer(HOST, [0], version="v1") as server:
        url = f"http://{HOST}:{server.ports[0]}/get"
        out = subprocess.run(
            [sys.executable, "-m", "tcpmesh", "load", "--curl", url, "-H", "end-user: jason"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition("\n\n")
    assert head.splitlines()[0] == "HTTP/1.1 200 OK"
    assert "x-echo-version: v1" in head.lower()
    assert json.loads(body)["headers"]["end-user"] == "jason"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://x/"], "expected http://HOST[:PORT]/PATH"),
        (["http://127.0.0.1:99999/"], "invalid port"),
        (["http://127.0.0.1/", "-n", "0"], "-n must be 1..100000"),
        (["http://127.0.0.1/", "-c", "many"], "-c must be an integer"),
    ],
)
def test_load_command_rejects_bad_arguments(args: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tcpmesh", "load", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
