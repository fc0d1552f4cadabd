"""The HTTP echo backend (`tcpmesh echo --http`) and `tcpmesh probe --http`: real sockets, a real subprocess."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time

import pytest

from tcpmesh.cli import main
from tcpmesh.echo import echo_settings_for_container
from tcpmesh.echo_http import VERSION_HEADER, HttpEchoServer
from tcpmesh.probe import http_probe
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_port

HOST = "127.0.0.1"


def _get(port: int, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_echo_names_version_pod_and_request_headers() -> None:
    with HttpEchoServer(HOST, [0, 0], version="v2", pod="reviews-v2-0") as server:
        for port in server.ports:
            status, headers, body = _get(port, "/reviews/0?x=1", {"end-user": "jason"})
            assert status == 200
            assert headers[VERSION_HEADER] == "v2"
            data = json.loads(body)
            assert data["version"] == "v2"
            assert data["pod"] == "reviews-v2-0"
            assert data["path"] == "/reviews/0?x=1"
            assert data["headers"]["end-user"] == "jason"


def test_delay_path_answers_that_late_and_stop_cuts_the_wait_short() -> None:
    """httpbin's ``/delay/<seconds>``: a slow backend for route timeouts; a stop never waits for it."""
    with HttpEchoServer(HOST, [0], version="v1") as server:
        started = time.monotonic()
        status, _, body = _get(server.ports[0], "/delay/0.3?x=1")
        assert status == 200
        assert json.loads(body)["path"] == "/delay/0.3?x=1"
        assert 0.3 <= time.monotonic() - started < 2.0
        started = time.monotonic()
        assert _get(server.ports[0], "/delayed/5")[0] == 200  # not the delay form: at once
        assert time.monotonic() - started < 1.0
        conn = http.client.HTTPConnection(HOST, server.ports[0], timeout=5)
        conn.request("GET", "/delay/9")
    started = time.monotonic()
    try:
        conn.getresponse().read()  # stop() released the handler: the answer (or a close) comes at once
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()
    assert time.monotonic() - started < 2.0


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    with HttpEchoServer(HOST, [0], version="v1") as server:
        conn = http.client.HTTPConnection(HOST, server.ports[0], timeout=5)
        try:
            for _ in range(3):
                conn.request("POST", "/", body=b"x" * 100)
                response = conn.getresponse()
                assert response.status == 200
                assert not response.will_close
                response.read()
        finally:
            conn.close()


def test_probe_counts_versions_and_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with HttpEchoServer(HOST, [0], version="v1") as server:
        tally = http_probe(HOST, server.ports[0], 25, headers={"end-user": "jason"})
        assert tally.replies == {"v1": 25}
        assert not tally.failures
        assert main(["probe", "--http", f"{HOST}:{server.ports[0]}", "-c", "10", "-H", "end-user: jason"]) == 0
    out = capsys.readouterr().out
    assert "10 requests to" in out
    assert "v1" in out


def test_probe_reports_refused_requests() -> None:
    tally = http_probe(HOST, free_port(), 3, timeout=1)
    assert tally.answered == 0
    assert sum(tally.failures.values()) == 3


def test_images_map_to_http_echo() -> None:
    bookinfo = echo_settings_for_container("docker.io/istio/examples-bookinfo-reviews-v3:1", [], [9080])
    assert bookinfo is not None
    assert (bookinfo.mode, bookinfo.ports, bookinfo.prefix) == ("http", (9080,), "v3")
    own = echo_settings_for_container("tcpmesh-http-echo", ["8081,8082", "v9"], [])
    assert own is not None
    assert (own.mode, own.ports, own.prefix) == ("http", (8081, 8082), "v9")


def test_cli_serves_until_sigterm() -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "tcpmesh.echo", "--http", "--prefix", "v7", "--ports", str(port), "--pod", "p"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:

        def answers() -> bool:
            try:
                return _get(port)[0] == 200
            except OSError:
                return False

        wait_until(answers, timeout=15, what="the HTTP echo subprocess answering")
        assert json.loads(_get(port)[2])["version"] == "v7"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
