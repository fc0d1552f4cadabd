"""Real etcd members (Debian's etcd-server) on free loopback ports, for the store tests marked ``etcd``."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports


@dataclass
class EtcdCluster:
    root: Path
    size: int
    clients: list[int] = field(default_factory=list)
    peers: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes] | None] = field(default_factory=list)

    def url(self, prefix: str | None = None) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.clients)
        return f"etcd://{hosts}/{prefix or uuid.uuid4().hex}"

    def start(self) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            pytest.skip("etcd is not installed (apt-get install -y etcd-server)")
        if not self.clients:
            ports = free_ports(2 * self.size)
            self.clients, self.peers = ports[: self.size], ports[self.size :]
            self.processes = [None] * self.size
        for i in range(self.size):
            self.start_member(i)
        for i in range(self.size):
            self.wait_healthy(i)

    def start_member(self, i: int) -> None:
        cluster = ",".join(f"m{j}=http://127.0.0.1:{p}" for j, p in enumerate(self.peers))
        log = (self.root / f"m{i}.log").open("ab")
        self.processes[i] = subprocess.Popen(
            [
                "etcd", "--name", f"m{i}", "--data-dir", str(self.root / f"m{i}"),
                "--listen-client-urls", f"http://127.0.0.1:{self.clients[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.clients[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peers[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peers[i]}",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.root.name,
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_healthy(self, i: int, timeout: float = 30) -> None:
        def healthy() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.clients[i]}/health", timeout=2) as resp:
                return b'"true"' in resp.read()

        wait_until(healthy, timeout=timeout, interval=0.1, what=f"etcd member m{i}", ignore=(OSError,))

    def stop_member(self, i: int) -> None:
        proc = self.processes[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self.processes[i] = None

    def stop(self) -> None:
        for i in range(len(self.processes)):
            self.stop_member(i)


def _cluster(tmp_path_factory: pytest.TempPathFactory, size: int) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp(f"etcd{size}-"), size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def etcd3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    yield from _cluster(tmp_path_factory, 3)


@pytest.fixture
def etcd1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    yield from _cluster(tmp_path_factory, 1)


@pytest.fixture
def etcd3_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A 3-member cluster of the test's own, for tests that kill members."""
    yield from _cluster(tmp_path_factory, 3)
