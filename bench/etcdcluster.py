"""A throwaway etcd cluster (Debian's etcd-server) on free loopback ports, for the benchmarks.

The tests have their own (tests/store/conftest.py, with pytest's skips); this one raises when etcd is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from pathlib import Path

from common import ROOT  # noqa: F401  (puts the repository on sys.path)

from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports

__all__ = ["EtcdCluster"]


class EtcdCluster:
    def __init__(self, size: int = 3) -> None:
        if shutil.which("etcd") is None:
            raise RuntimeError("etcd is not installed (apt-get install -y etcd-server)")
        self.size = size
        self.tmp = tempfile.TemporaryDirectory(prefix="tcpmesh-bench-etcd-")
        ports = free_ports(2 * size)
        self.clients, self.peers = ports[:size], ports[size:]
        self.processes: list[subprocess.Popen[bytes]] = []

    def url(self) -> str:
        """A store URL with a fresh key prefix: each benchmark arm starts from an empty store."""
        return "etcd://" + ",".join(f"127.0.0.1:{p}" for p in self.clients) + f"/{uuid.uuid4().hex}"

    def start(self) -> EtcdCluster:
        root = Path(self.tmp.name)
        cluster = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peers))
        for i in range(self.size):
            log = (root / f"m{i}.log").open("ab")
            cmd = [
                "etcd", "--name", f"m{i}", "--data-dir", str(root / f"m{i}"),
                "--listen-client-urls", f"http://127.0.0.1:{self.clients[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.clients[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peers[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peers[i]}",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", root.name,
            ]  # fmt: skip
            self.processes.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        for port in self.clients:
            wait_until(lambda p=port: self._healthy(p), timeout=30, interval=0.1, what="etcd member", ignore=(OSError,))
        return self

    @staticmethod
    def _healthy(port: int) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return b'"true"' in resp.read()

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.processes.clear()
        self.tmp.cleanup()

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
