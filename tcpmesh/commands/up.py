"""`tcpmesh up`: control plane + Envoy gateway + echo pods on this machine, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from importlib import resources
from pathlib import Path
from types import FrameType

from tcpmesh.model.config import load_config
from tcpmesh.runtime.local import LocalMesh, MeshPorts

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
        help="config store, logs and Envoy files (default ./.tcpmesh; reset on start)",
    )
    parser.add_argument("--ads-port", type=int, default=15010)
    parser.add_argument("--http-port", type=int, default=15014, help="control plane HTTP API / metrics")
    parser.add_argument("--admin-port", type=int, default=15000, help="Envoy admin API")
    parser.add_argument("--delta", action="store_true", help="Envoy uses incremental (delta) ADS")
    parser.add_argument("--log-level", default="INFO")


def _listeners(mesh: LocalMesh) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for envoy in mesh.envoys:
        out.extend(envoy.listeners().values())
    return sorted(out, key=lambda a: a[1])


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

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    mesh = LocalMesh(
        args.state_dir.resolve(),
        MeshPorts(ads=args.ads_port, http=args.http_port, admin=args.admin_port),
        ads_api_type="DELTA_GRPC" if args.delta else "GRPC",
    )
    try:
        mesh.start(paths)
        _print_ready(mesh)
        _follow(mesh, stop)
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"tcpmesh up: {exc}", file=sys.stderr)
        print(f"logs: {mesh.log_dir}", file=sys.stderr)
        return 1
    finally:
        mesh.stop()
    print("tcpmesh up: stopped", file=sys.stderr)
    return 0


def _follow(mesh: LocalMesh, stop: threading.Event) -> None:
    """Keep pods in line with the config (a Deployment applied later gets its pods) until stopped."""
    from watchfiles import watch

    for _ in watch(
        mesh.config_dir, stop_event=stop, debounce=200, rust_timeout=500, yield_on_timeout=True, raise_interrupt=False
    ):
        if stop.is_set():
            return
        mesh.reconcile_pods()
        cp = mesh.control_plane.process
        if cp is not None and cp.poll() is not None:
            log.error("the control plane exited (%s); see %s", cp.returncode, mesh.control_plane.log_path)
            return


def _print_ready(mesh: LocalMesh) -> None:
    info = mesh.summary()
    listeners = _listeners(mesh)
    lines = ["", "tcpmesh is up: control plane, Envoy gateway and echo pods are running.", ""]
    for pod in sorted(mesh.pods.running.values(), key=lambda p: p.pod.name):
        lines.append(
            f"  pod {pod.pod.name:<22} {pod.pod.ip:<12} {' '.join(pod.command[pod.command.index('--ports') :])}"
        )
    for name, reason in sorted(mesh.pods.unsupported.items()):
        lines.append(f"  pod {name:<22} not started: {reason}")
    lines.append("")
    for host, port in listeners:
        lines.append(f"  Envoy listener {host}:{port}")
    port = listeners[0][1] if listeners else 31400
    lines += [
        "",
        "Try it:",
        f"  for i in $(seq 1 10); do echo hello | nc -q1 127.0.0.1 {port}; done",
        "  tcpmesh apply -f samples/tcp-echo-shift/tcp-echo-20-v2.yaml      # 80/20 between v1 and v2",
        "  tcpmesh status                                                  # versions sent / ACKed per proxy",
        "  tcpmesh dump --server 127.0.0.1:15014 --type listeners          # what the control plane serves",
        f"  curl -s 127.0.0.1:{mesh.envoys[0].admin_port}/config_dump                         # Envoy's own view"
        if mesh.envoys
        else "",
        "",
        f"Control plane HTTP {info['http']}, ADS {info['ads']}; config store {info['config_dir']}",
        f"Logs: {info['logs']}",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
