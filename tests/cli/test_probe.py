"""`tcpmesh probe`: the split of real echo servers' replies, and the interval it prints."""

from __future__ import annotations

import socket

import pytest
from scipy.stats import binomtest

from tcpmesh.cli import main
from tcpmesh.echo import BackgroundEchoServer
from tcpmesh.probe import probe, wilson_interval


def test_wilson_interval_matches_scipy() -> None:
    for hits, total in ((0, 10), (3, 10), (80, 100), (400, 1000), (1000, 1000)):
        ci = binomtest(hits, total).proportion_ci(confidence_level=0.95, method="wilson")
        low, high = wilson_interval(hits, total)
        assert low == pytest.approx(ci.low, abs=1e-9)
        assert high == pytest.approx(ci.high, abs=1e-9)


def test_probe_tallies_replies_by_first_word(capsys: pytest.CaptureFixture[str]) -> None:
    server = BackgroundEchoServer("127.0.0.1", [0], prefix="one")
    (port,) = server.start()
    try:
        assert main(["probe", f"127.0.0.1:{port}", "--count", "20", "--send", "ping"]) == 0
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert f"20 connections to 127.0.0.1:{port}: 20 answered, 0 failed" in out
    assert "one              20  100.0%   95% interval  83.9% – 100.0%" in out


def test_probe_counts_refused_connections() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        tally = probe("127.0.0.1", port, 3, timeout=2)
    assert tally.answered == 0
    assert sum(tally.failures.values()) == 3
    assert "ConnectionRefusedError" in next(iter(tally.failures))


def test_probe_without_any_answer_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        assert main(["probe", f"127.0.0.1:{s.getsockname()[1]}", "-c", "2", "--timeout", "1"]) == 1
    assert "no connection was answered" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["nohost", "127.0.0.1:0", "127.0.0.1:99999"])
def test_probe_rejects_bad_addresses(bad: str) -> None:
    with pytest.raises(SystemExit):
        main(["probe", bad])
