"""A real control plane (``tcpmesh serve`` child process) + Envoy gateway(s) + two echo backends, for benchmarks.

With ``store`` (an ``etcd://`` URL) the control plane serves that store, and ``add_replica()`` starts more
replicas of it (each with its own ports and state dir); ``start_envoy(replica=i)`` bootstraps an Envoy to one.

Backends: one echo server answering "one ..." (v1) and one answering "two ..." (v2), shared by every service
(all v1 WorkloadEntries point at the first, all v2 at the second).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT  # noqa: F401  (puts the repository on sys.path)
from synth import MeshSpec, mesh_files

from tcpmesh.apiclient import request_json
from tcpmesh.echo import BackgroundEchoServer
from tcpmesh.runtime.bootstrap import gateway_bootstrap
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts
from tcpmesh.runtime.ports import free_ports
from tcpmesh.store import open_store

__all__ = ["BenchMesh", "distinct_free_ports"]


def distinct_free_ports(count: int) -> tuple[int, ...]:
    """``count`` different ports free on 0.0.0.0 a moment ago, below the kernel's ephemeral range when it has
    room (tcpmesh.runtime.ports says why)."""
    return tuple(free_ports(count, "0.0.0.0"))


class BenchMesh:
    def __init__(self, services: int, *, extra_args: tuple[str, ...] = (), store: str | None = None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="tcpmesh-bench-")
        self.state = Path(self.tmp.name)
        self.ports = MeshPorts.free()
        self.v1 = BackgroundEchoServer("127.0.0.1", [0], prefix="one")
        self.v2 = BackgroundEchoServer("127.0.0.1", [0], prefix="two")
        self.services = services
        self.store = store
        self.extra_args = (*extra_args, "--store", store) if store else extra_args
        self.envoys: list[EnvoyProcess] = []
        self.spec: MeshSpec | None = None
        self.control_plane: ControlPlaneProcess | None = None
        self.replicas: list[ControlPlaneProcess] = []
        """Every replica, the first being ``control_plane``."""

    def start(self) -> None:
        (p1,) = self.v1.start()
        (p2,) = self.v2.start()
        # The control plane's ADS and API ports were picked in __init__ but are not bound yet: keep them out, or
        # Envoy cannot bind a gateway port the control plane took (10 000 of the ~23 000 ports below the
        # ephemeral range collided with one of the two in most full convergence runs).
        taken = {self.ports.ads, self.ports.http}
        picked = distinct_free_ports(self.services + len(taken))
        gateway_ports = tuple(p for p in picked if p not in taken)[: self.services]
        self.spec = MeshSpec(
            self.services,
            ports=gateway_ports,
            v1_address="127.0.0.1",
            v2_address="127.0.0.1",
            v1_port=p1,
            v2_port=p2,
        )
        store = open_store(self.store, self.state)  # seeded before the control plane opens it (it takes the lock)
        try:
            # Files of 500 services: under the size limit; 20 (100 resources) on etcd: one etcd transaction each.
            for name, text in mesh_files(self.spec, per_file=20 if self.store else 500).items():
                result = store.apply(text, source=name)
                if not result.ok:
                    raise RuntimeError("; ".join(str(p) for p in result.problems))
        finally:
            store.close()
        self.control_plane = ControlPlaneProcess(None, self.state, self.ports, self.extra_args)
        self.control_plane.start(timeout=60 + self.services / 50)  # 10 000 services: ~30 s to load and translate
        self.replicas = [self.control_plane]

    def add_replica(self) -> ControlPlaneProcess:
        """Another control plane on the same (etcd) store."""
        assert self.store, "replicas share an etcd store: BenchMesh(store='etcd://...')"
        state = self.state / f"replica-{len(self.replicas)}"
        replica = ControlPlaneProcess(None, state, MeshPorts.free(), self.extra_args)
        self.replicas.append(replica)
        replica.start(timeout=60 + self.services / 50)
        return replica

    def start_envoy(self, api_type: str = "GRPC", name: str = "istio-ingressgateway", replica: int = 0) -> EnvoyProcess:
        ads = self.replicas[replica].ports.ads if self.replicas else self.ports.ads
        # TCPMESH_BENCH_ENVOY_STATS=0: no metrics_service sink (Envoy flushes every stat of every cluster to it
        # each second, on its main thread: at 30 000 clusters that is what delays its xDS handling).
        stats = os.environ.get("TCPMESH_BENCH_ENVOY_STATS") != "0"
        bootstrap = gateway_bootstrap(
            name=name, ads_port=ads, admin_port=0, ads_api_type=api_type, stats_to_control_plane=stats
        )
        envoy = EnvoyProcess(bootstrap, work_dir=self.state / f"envoy-{name}-{len(self.envoys)}", admin_port=0)
        envoy.start()
        self.envoys.append(envoy)
        return envoy

    @property
    def http(self) -> str:
        assert self.control_plane is not None
        return self.control_plane.http

    def status(self) -> dict[str, Any]:
        assert self.control_plane is not None
        _, payload = request_json(self.http, "/debug/syncz", timeout=10, token=self.control_plane.token)
        return dict(payload)

    def wait_synced(self, proxies: int, timeout: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.status()
            ps = st["proxies"]
            if len(ps) >= proxies and all(
                p["types"].get("Listener", {}).get("state") == "SYNCED"
                and all(t["state"] in ("SYNCED", "NOT_SENT") for t in p["types"].values())
                for p in ps
            ):
                return st
            time.sleep(0.05)
        raise TimeoutError(f"proxies not synced after {timeout} s: {self.status()}")

    def apply(self, text: str) -> tuple[int, Any]:
        assert self.control_plane is not None
        token = self.control_plane.token
        # At 10 000 services a reload re-reads the whole store (tens of seconds on a busy 2-core machine).
        timeout = max(30.0, self.services / 50)
        return request_json(self.http, "/api/apply?source=bench.yaml", body=text.encode(), timeout=timeout, token=token)

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=10) as resp:
            return str(resp.read().decode())

    def stop(self) -> None:
        for envoy in self.envoys:
            envoy.stop()
            envoy.close()
        self.envoys.clear()
        for replica in reversed(self.replicas[1:]):
            replica.stop()
        if self.control_plane is not None:
            self.control_plane.stop()
        self.v1.stop()
        self.v2.stop()
        self.tmp.cleanup()

    def __enter__(self) -> BenchMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
