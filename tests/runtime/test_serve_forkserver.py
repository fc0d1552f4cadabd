"""`tcpmesh serve` starts the translation worker's forkserver first thing (tcpmesh/__main__.py) unless
translation runs in a thread, and nothing of it is left once serve has stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports

from .test_up_signals import _cmdline, _descendants, _running

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "tcp-echo"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("flags", "forkserver"),
    [([], True), (["--translate-in", "thread"], False), (["--translate-in=thread"], False)],
    ids=["process", "thread", "thread="],
)
def test_serve_has_a_forkserver_only_when_translating_in_a_process(
    tmp_path: Path, flags: list[str], forkserver: bool
) -> None:
    ads, http = free_ports(2)
    ready = tmp_path / "ready.json"
    cmd = [sys.executable, "-m", "tcpmesh", "serve", "--state-dir", str(tmp_path / "state"), "--seed", str(SAMPLE),
           "--ads-address", f"127.0.0.1:{ads}", "--http-address", f"127.0.0.1:{http}", "--ready-file", str(ready),
           *flags]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=60, what="serve to be ready")
        assert proc.poll() is None, proc.communicate()[1]
        servers = [p for p in _descendants(proc.pid) if "multiprocessing.forkserver" in _cmdline(p)]
        assert bool(servers) is forkserver, servers
        assert all("tcpmesh.translation" in _cmdline(p) for p in servers)  # its preload
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert not [p for p in servers if _running(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
