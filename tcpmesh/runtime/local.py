"""The embedded default: control plane, Envoy gateway (and sidecars) and echo pods as child processes of one supervisor.

Used by `tcpmesh up` and by the end-to-end tests, so both run exactly the same thing.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcpmesh.apitoken import TOKEN_FILE_NAME, read_token
from tcpmesh.model.config import Config
from tcpmesh.model.gatewayapi.listeners import GATEWAY_NAME_LABEL
from tcpmesh.model.gatewayapi.resources import KUBE_GATEWAY
from tcpmesh.runtime.bootstrap import gateway_bootstrap, sidecar_bootstrap
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.lifetime import die_with_parent
from tcpmesh.runtime.pods import PodSupervisor
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports
from tcpmesh.store import DB_NAME, ConfigStore, import_paths, open_store
from tcpmesh.translator.service_addresses import DEFAULT_SERVICE_NETWORK, service_addresses_of
from tcpmesh.translator.services import services_of
from tcpmesh.translator.workloads import DEFAULT_POD_NETWORK

__all__ = ["ControlPlaneProcess", "LocalMesh", "MeshPorts", "ServiceAddress"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshPorts:
    ads: int = 15010
    http: int = 15014
    admin: int = 15000

    @classmethod
    def free(cls) -> MeshPorts:
        """Distinct free loopback ports for ADS and the API; Envoy picks its own admin port."""
        ads, http = free_ports(2)
        return cls(ads=ads, http=http, admin=0)


@dataclass(frozen=True, slots=True)
class ServiceAddress:
    """Where a sidecar listens for a service: its clusterIP or service-network address, and its ports."""

    hostname: str
    address: str
    ports: tuple[int, ...]


class ControlPlaneProcess:
    """`tcpmesh serve` as a child process; restartable (same store, same ports).

    ``config_dir``: a one-way input directory (``--config-dir``), or None for the store alone."""

    def __init__(
        self,
        config_dir: Path | None,
        state_dir: Path,
        ports: MeshPorts,
        extra_args: Sequence[str] = (),
        token_file: Path | None = None,
        program: Sequence[str] = (),
    ) -> None:
        """`program` is the command whose `serve` runs (default: this Python's `-m tcpmesh`)."""
        self.program = list(program) or [sys.executable, "-m", "tcpmesh"]
        self.config_dir = config_dir
        self.state_dir = state_dir
        self.ports = ports
        self.extra_args = list(extra_args)
        self.token_file = token_file or state_dir / TOKEN_FILE_NAME
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir / "logs" / "control-plane.log"
        self.ready_file = state_dir / "control-plane.ready.json"

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self.ports.http}"

    def start(self, timeout: float = 30.0) -> None:
        self.ready_file.unlink(missing_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            *self.program,
            "serve",
            "--state-dir",
            str(self.state_dir),
            *(["--config-dir", str(self.config_dir)] if self.config_dir is not None else []),
            "--ads-address",
            f"127.0.0.1:{self.ports.ads}",
            "--http-address",
            self.http,
            "--ready-file",
            str(self.ready_file),
            "--token-file",
            str(self.token_file),
            *self.extra_args,
        ]
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"control plane exited ({process.returncode}); see {self.log_path}")
            return self.ready_file.exists()

        wait_until(ready, timeout=timeout, interval=0.05, what="the control plane to become ready")

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    @property
    def token(self) -> str:
        """The HTTP API's bearer token (the control plane creates it on first start)."""
        return read_token(self.token_file)

    def status(self) -> dict[str, Any]:
        from tcpmesh.apiclient import request_json

        code, payload = request_json(self.http, "/debug/syncz", timeout=5, token=self.token)
        if code != 200:
            raise RuntimeError(f"/debug/syncz answered {code}: {payload}")
        return dict(payload)


@dataclass
class LocalMesh:
    """Everything `tcpmesh up` runs. Start order: control plane, pods, Envoy; stop order is the reverse."""

    state_dir: Path
    ports: MeshPorts = field(default_factory=MeshPorts)
    ads_api_type: str = "GRPC"
    pod_network: str = DEFAULT_POD_NETWORK
    service_network: str = DEFAULT_SERVICE_NETWORK
    control_plane_args: Sequence[str] = ()
    token_file: Path | None = None
    control_plane_program: Sequence[str] = ()
    envoys: list[EnvoyProcess] = field(default_factory=list)
    gateway_envoys: dict[tuple[str, str], EnvoyProcess] = field(default_factory=dict)
    """The Envoy of each Gateway API Gateway tcpmesh handles, by (namespace, name)."""

    def __post_init__(self) -> None:
        self.log_dir = self.state_dir / "logs"
        self.store_path = self.state_dir / DB_NAME
        self._reader: ConfigStore | None = None
        # The control plane addresses pods and services exactly as the runtime does; explicit args still win.
        args = ["--pod-network", self.pod_network, "--service-network", self.service_network, *self.control_plane_args]
        self.control_plane = ControlPlaneProcess(
            None, self.state_dir, self.ports, args, self.token_file, self.control_plane_program
        )
        self.pods = PodSupervisor(self.log_dir, self.pod_network)

    def seed_config(self, paths: Sequence[Path], *, onto_existing: bool = False) -> bool:
        """On the first start (no store yet), apply ``paths`` to the store as one change. Returns whether it
        applied them; a store that exists is left exactly as it is (it is the running config) unless
        ``onto_existing``: then ``paths`` are applied on top, as ``tcpmesh apply`` would (nothing is deleted)."""
        if self.store_path.exists() and not onto_existing:
            return False
        created = not self.store_path.exists()
        store = open_store(None, self.state_dir)
        try:
            result = import_paths(store, paths)
        finally:
            store.close()
        if not result.ok:
            if created:
                self.store_path.unlink(missing_ok=True)
            raise RuntimeError("; ".join(str(p) for p in result.problems if p.is_error))
        return True

    def config(self) -> Config | None:
        if self._reader is None:
            if not self.store_path.exists():
                return None
            self._reader = open_store(None, self.state_dir, writer=False)
        config, problems = self._reader.load()  # the same store the control plane serves
        return None if any(p.is_error for p in problems) else config

    def revision(self) -> int:
        """The store's revision (0 before it exists): moves with every committed change."""
        self.config()
        return self._reader.revision() if self._reader is not None else 0

    def reconcile_pods(self) -> None:
        config = self.config()
        if config is not None:
            self.pods.reconcile(config)
            self.pods.wait_ready()

    def start_envoy(
        self,
        *,
        name: str = "istio-ingressgateway",
        namespace: str = "istio-system",
        labels: dict[str, str] | None = None,
        admin_port: int | None = None,
        drain_time_s: int = 1,
    ) -> EnvoyProcess:
        """Start an Envoy gateway; ``admin_port`` 0 lets Envoy pick a free port (reported back)."""
        admin = self.ports.admin if admin_port is None else admin_port
        bootstrap = gateway_bootstrap(
            name=name,
            namespace=namespace,
            labels=labels,
            ads_port=self.ports.ads,
            admin_port=admin,
            ads_api_type=self.ads_api_type,
        )
        # Same-named Gateway API Gateways of two namespaces get one Envoy each: their work dirs must differ too.
        work = f"envoy-{name}" if namespace == "istio-system" else f"envoy-{name}.{namespace}"
        return self._start(bootstrap, self.state_dir / work, admin, drain_time_s)

    def start_sidecar(
        self,
        *,
        name: str = "client",
        namespace: str = "default",
        labels: dict[str, str] | None = None,
        admin_port: int = 0,
        drain_time_s: int = 1,
    ) -> EnvoyProcess:
        """Start a client-side sidecar Envoy (``sidecar~`` node id; labels default to ``app: sleep``).

        Its outbound listeners bind the service addresses (see translator/sidecar.py), so two sidecars
        running at once would compete for the same address:port: run one per service network.
        """
        bootstrap = sidecar_bootstrap(
            name=name,
            namespace=namespace,
            labels=labels,
            ads_port=self.ports.ads,
            admin_port=admin_port,
            ads_api_type=self.ads_api_type,
        )
        return self._start(bootstrap, self.state_dir / f"envoy-sidecar-{name}.{namespace}", admin_port, drain_time_s)

    def _start(self, bootstrap: dict[str, Any], work_dir: Path, admin_port: int, drain_time_s: int) -> EnvoyProcess:
        work_dir.mkdir(parents=True, exist_ok=True)
        envoy = EnvoyProcess(bootstrap, work_dir=work_dir, admin_port=admin_port, drain_time_s=drain_time_s)
        envoy.start()
        self.envoys.append(envoy)
        return envoy

    def stop_envoy(self, envoy: EnvoyProcess) -> None:
        """Stop one Envoy and forget it (its listeners' addresses are free again once this returns)."""
        envoy.stop()
        self.envoys.remove(envoy)

    def service_addresses(self) -> list[ServiceAddress]:
        """Every service a sidecar gets listeners for, with the address it binds (as the control plane computes)."""
        config = self.config()
        if config is None:
            return []
        addresses = service_addresses_of(config, self.service_network)
        out: list[ServiceAddress] = []
        for svc in services_of(config):
            address = addresses.get(svc.hostname)
            if address is not None and not any(s.hostname == svc.hostname for s in out):
                out.append(ServiceAddress(svc.hostname, address, tuple(p.number for p in svc.ports)))
        return out

    def wait_synced(self, timeout: float = 30.0, *, generation: int | None = None) -> dict[str, Any]:
        """Until every connected proxy has ACKed the latest version of every type it was sent, then (for at most
        WARMING_WAIT more) until no Envoy has a listener still warming: Envoy asks for a listener's routes (RDS)
        and secrets (SDS) only after ACKing the listener, so between the two the status shows them not sent yet
        while the listener cannot accept. A listener that stays warming (a secret that never comes) is Envoy's
        to report; it does not hold this up for longer."""
        result: dict[str, Any] = {}

        def synced() -> bool:
            status = self.control_plane.status()
            if generation is not None and status["generation"] < generation:
                return False
            proxies = status["proxies"]
            if len(proxies) < len(self.envoys):
                return False
            ok = all(t["state"] in ("SYNCED", "NOT_SENT") for p in proxies for t in p["types"].values()) and all(
                p["types"].get("Listener", {}).get("state") == "SYNCED" for p in proxies
            )
            if ok:
                result.update(status)
            return ok

        wait_until(
            synced, timeout=timeout, interval=0.05, what="every proxy to ACK the config", ignore=(OSError, KeyError)
        )
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not any(_warming(e) for e in self.envoys), timeout=WARMING_WAIT, interval=0.02,
                       what="Envoy's listeners to warm", ignore=(OSError, KeyError))  # fmt: skip
        return result

    def reconcile_gateways(self) -> None:
        """One Envoy per Gateway API Gateway of a class tcpmesh handles, labelled as Istio labels its deployment
        (``gateway.networking.k8s.io/gateway-name``); the Envoy of a Gateway that is gone is stopped."""
        config = self.config()
        if config is None:
            return
        wanted = {(ns, name) for kind, ns, name in config.gateway_api().statuses if kind == KUBE_GATEWAY}
        for key in sorted(set(self.gateway_envoys) - wanted):
            self.stop_envoy(self.gateway_envoys.pop(key))
        for ns, name in sorted(wanted - set(self.gateway_envoys)):
            self.gateway_envoys[(ns, name)] = self.start_envoy(
                name=f"{name}-istio", namespace=ns, labels={GATEWAY_NAME_LABEL: name}, admin_port=0
            )

    def start(self, paths: Sequence[Path], *, with_envoy: bool = True, onto_existing: bool = False) -> None:
        self.seed_config(paths, onto_existing=onto_existing)
        self.control_plane.start()
        self.reconcile_pods()
        if with_envoy:
            self.start_envoy()
            self.reconcile_gateways()
            self.wait_synced()

    def stop(self) -> None:
        for envoy in reversed(self.envoys):
            envoy.stop()
        self.envoys.clear()
        self.gateway_envoys.clear()
        self.pods.stop_all()
        self.control_plane.stop()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def summary(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state_dir),
            "store": str(self.store_path),
            "logs": str(self.log_dir),
            "http": self.control_plane.http,
            "ads": f"127.0.0.1:{self.ports.ads}",
        }

    def __enter__(self) -> LocalMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


WARMING_WAIT = 10.0
"""How long `wait_synced` waits, once every proxy has ACKed, for Envoy's listeners to finish warming."""

_WARMING = "listener_manager.total_listeners_warming"


def _warming(envoy: EnvoyProcess) -> int:
    """Listeners Envoy has taken but not yet warmed (waiting for their routes or secrets)."""
    return envoy.stats(filter=f"^{_WARMING}$").get(_WARMING, 0)
