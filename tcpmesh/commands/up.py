"""`tcpmesh up`: control plane + Envoy gateway (+ a client sidecar) + echo pods on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import select
import shutil
import signal
import sys
from importlib import resources
from pathlib import Path
from types import FrameType

from tcpmesh.commands.offline import add_inline_weights_argument, parse_labels
from tcpmesh.model.config import load_config
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.local import LocalMesh, MeshPorts
from tcpmesh.store import lock_state_dir
from tcpmesh.translator.http_sidecar import HTTP_PROTOCOLS
from tcpmesh.translator.service_addresses import DEFAULT_SERVICE_NETWORK, service_addresses_of
from tcpmesh.translator.services import services_of

__all__ = ["add_arguments", "default_sample", "run"]

log = logging.getLogger(__name__)


def default_sample() -> Path:
    """The tcp-echo sample shipped inside the package (the same files as samples/tcp-echo)."""
    return Path(str(resources.files("tcpmesh") / "data" / "samples" / "tcp-echo"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="YAML files or directories to apply (default: the tcp-echo sample)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".tcpmesh"),
        help=(
            "config store (SQLite; PATHs are applied to it, the default sample on the first start only), logs and "
            "Envoy files (default ./.tcpmesh)"
        ),
    )
    parser.add_argument("--ads-port", type=int, default=15010, help="control plane ADS (gRPC) port (default 15010)")
    parser.add_argument(
        "--http-port", type=int, default=15014, help="control plane HTTP API, /ui and metrics port (default 15014)"
    )
    parser.add_argument("--admin-port", type=int, default=15000, help="Envoy admin API port (default 15000)")
    parser.add_argument("--delta", action="store_true", help="Envoy uses incremental (delta) ADS")
    parser.add_argument(
        "--sidecar",
        action="store_true",
        help="also run a client-side sidecar Envoy whose listeners bind each service address (mesh routing)",
    )
    parser.add_argument(
        "--sidecar-labels",
        type=parse_labels,
        default=(("app", "sleep"),),
        metavar="K=V,...",
        help="the sidecar's workload labels, matched by sourceLabels (default app=sleep)",
    )
    parser.add_argument(
        "--sidecar-namespace", default="default", help="the sidecar's namespace, matched by sourceNamespace"
    )
    parser.add_argument(
        "--service-network",
        default=DEFAULT_SERVICE_NETWORK,
        help=f"first address of the loopback range for VIP-less services (default {DEFAULT_SERVICE_NETWORK})",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="the HTTP API's bearer token, created (mode 0600) on first start (default STATE_DIR/token)",
    )
    add_inline_weights_argument(parser)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")


def _listeners(envoy: EnvoyProcess | None) -> list[tuple[str, int]]:
    return sorted(envoy.listeners().values(), key=lambda a: (a[1], a[0])) if envoy is not None else []


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    paths = args.paths or [default_sample()]
    _, problems = load_config(paths)
    errors = [p for p in problems if p.is_error]
    for problem in problems:
        print(problem, file=sys.stderr)
    if errors:
        print(f"tcpmesh up: {len(errors)} error(s) in the config; nothing started", file=sys.stderr)
        return 1

    state_dir = args.state_dir.resolve()
    try:
        # One `up` per state dir: a second one must not touch the running store (or its logs) at all.
        lock = lock_state_dir(state_dir, "up.lock")
    except OSError as exc:
        print(f"tcpmesh up: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(args, paths, state_dir)
    finally:
        os.close(lock)


class _Stop:
    """Whether SIGINT or SIGTERM has arrived, and a wait that ends when one does.

    A Python signal handler runs in the main thread between two bytecodes, also while that thread holds a lock,
    so it must not take one (the signal module's docs warn of deadlocks): `threading.Event.set` takes the lock
    that `Event.wait` holds around its check, which the main loop calls five times a second. The handler only
    stores a flag; the interpreter's own C-level handler writes a byte to the wake-up pipe `wait` selects on.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # set_wakeup_fd requires it; a full pipe already means "wake up"
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)  # kept until the process exits: a signal while stopping changes nothing

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum

    def wait(self, timeout: float) -> bool:
        """True once a signal has arrived; otherwise wait up to `timeout` seconds for one and say whether it did."""
        if self.signum is None:
            select.select([self._read], [], [], timeout)
        return self.signum is not None

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)  # before the pipe goes: the C handler must not write to its number
        os.close(self._read)
        os.close(self._write)


def _run(args: argparse.Namespace, paths: list[Path], state_dir: Path) -> int:
    stop = _Stop()
    try:
        return _run_until(stop, args, paths, state_dir)
    finally:
        stop.close()


def _run_until(stop: _Stop, args: argparse.Namespace, paths: list[Path], state_dir: Path) -> int:
    mesh = LocalMesh(
        state_dir,
        MeshPorts(ads=args.ads_port, http=args.http_port, admin=args.admin_port),
        ads_api_type="DELTA_GRPC" if args.delta else "GRPC",
        service_network=args.service_network,
        control_plane_args=["--inline-weights"] if args.inline_weights else [],
        token_file=args.token_file.resolve() if args.token_file else None,
    )
    sidecar: EnvoyProcess | None = None
    try:
        existed = mesh.store_path.exists()
        # PATHs named on the command line are applied on top of a store left by an earlier run (nothing of it is
        # deleted); without PATHs a later start serves the store as it was left.
        mesh.start(paths, onto_existing=bool(args.paths))
        if existed and args.paths:
            print(
                f"applied {' '.join(map(str, args.paths))} to the existing store {mesh.store_path} "
                "(what earlier runs applied stays; --state-dir DIR for a fresh one)",
                file=sys.stderr,
            )
        if args.sidecar:
            sidecar = mesh.start_sidecar(namespace=args.sidecar_namespace, labels=dict(args.sidecar_labels))
            mesh.wait_synced()
        _print_ready(mesh, sidecar)
        _follow(mesh, stop)
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"tcpmesh up: {exc}", file=sys.stderr)
        print(f"logs: {mesh.log_dir}", file=sys.stderr)
        return 1
    finally:
        mesh.stop()
    print("tcpmesh up: stopped", file=sys.stderr)
    return 0


def _follow(mesh: LocalMesh, stop: _Stop) -> None:
    """Keep pods in line with the config (a Deployment applied later gets its pods) until stopped."""
    seen = mesh.revision()
    while not stop.wait(0.2):
        revision = mesh.revision()
        if revision != seen:
            seen = revision
            mesh.reconcile_pods()
            mesh.reconcile_gateways()
        cp = mesh.control_plane.process
        if cp is not None and cp.poll() is not None:
            log.error("the control plane exited (%s); see %s", cp.returncode, mesh.control_plane.log_path)
            return


def _cli_name() -> str:
    """How the user can run this CLI again: ``tcpmesh`` if that is on PATH, else the path it was started by."""
    started = Path(sys.argv[0]).resolve()
    found = shutil.which("tcpmesh")
    return "tcpmesh" if found is not None and Path(found).resolve() == started else os.path.relpath(started)


def _print_ready(mesh: LocalMesh, sidecar: EnvoyProcess | None) -> None:
    info = mesh.summary()
    cli = _cli_name()
    gateway = mesh.envoys[0] if mesh.envoys else None
    listeners = _listeners(gateway)
    for _key, envoy in sorted(mesh.gateway_envoys.items()):
        # Gateway API Gateways: their own Envoy each, as Istio deploys one per Gateway.
        listeners += [(h, p) for h, p in _listeners(envoy) if (h, p) not in listeners]
    what = "Envoy gateway, client sidecar" if sidecar is not None else "Envoy gateway"
    lines = ["", f"tcpmesh is up: control plane, {what} and echo pods are running.", ""]
    for pod in sorted(mesh.pods.running.values(), key=lambda p: p.pod.name):
        lines.append(
            f"  pod {pod.pod.name:<22} {pod.pod.ip:<12} {' '.join(pod.command[pod.command.index('--ports') :])}"
        )
    for name, reason in sorted(mesh.pods.unsupported.items()):
        lines.append(f"  pod {name:<22} not started: {reason}")
    lines.append("")
    for host, port in listeners:
        lines.append(f"  Envoy listener {host}:{port}")
    lines += _sidecar_lines(mesh, sidecar)
    port = listeners[0][1] if listeners else 31400
    shift = "gateway-api-tcp-echo-shift" if mesh.gateway_envoys else "tcp-echo-shift"
    for (ns, name), envoy in sorted(mesh.gateway_envoys.items()):
        lines.append(f"  Gateway API Gateway {ns}/{name}: its own Envoy (admin 127.0.0.1:{envoy.admin_port})")
    lines += [
        "",
        "Try it:",
        f"  {cli} probe 127.0.0.1:{port} --count 100              # replies by version, with intervals",
        *(_sidecar_try(mesh, sidecar)),
        f"  {cli} apply -f samples/{shift}/tcp-echo-20-v2.yaml   # 80/20 between v1 and v2",
        f"  {cli} status                                 # versions sent / ACKed per proxy",
        f"  {cli} dump --server 127.0.0.1:15014          # what the control plane serves",
        f"  curl -s 127.0.0.1:{gateway.admin_port}/config_dump                         # Envoy's own view"
        if gateway is not None
        else "",
        "",
        f"Control plane HTTP {info['http']}, ADS {info['ads']}; config store {info['store']}",
        f"Live view: http://{info['http']}/ui#token=<the token in {mesh.control_plane.token_file}>",
        f"Logs: {info['logs']}",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _sidecar_lines(mesh: LocalMesh, sidecar: EnvoyProcess | None) -> list[str]:
    """The service addresses the sidecar listens on (what `nc <address> <port>` reaches through mesh routing)."""
    if sidecar is None:
        return []
    bound = set(_listeners(sidecar))
    lines = ["", f"  Sidecar (admin 127.0.0.1:{sidecar.admin_port}) listens for the mesh's services:"]
    for svc in mesh.service_addresses():
        ports = [p for p in svc.ports if (svc.address, p) in bound]
        if ports:
            lines.append(f"  service {svc.hostname:<44} {svc.address}:{','.join(map(str, ports))}")
    return lines


def _sidecar_try(mesh: LocalMesh, sidecar: EnvoyProcess | None) -> list[str]:
    cli = _cli_name()
    bound = _listeners(sidecar)
    if not bound:
        return []
    host, port = next(((h, p) for h, p in bound if p == 9000), bound[0])
    http = " --http" if (host, port) in _http_ports(mesh) else ""
    return [f"  {cli} probe{http} {host}:{port} --count 100     # through the sidecar"]


def _http_ports(mesh: LocalMesh) -> set[tuple[str, int]]:
    """The (service address, port) pairs the sidecar serves with an HTTP connection manager."""
    config = mesh.config()
    if config is None:
        return set()
    addresses = service_addresses_of(config, mesh.service_network)
    return {
        (addresses[s.hostname], p.number)
        for s in services_of(config)
        if s.hostname in addresses
        for p in s.ports
        if p.protocol in HTTP_PROTOCOLS
    }
