"""`tcpmesh serve`: the control plane alone — ADS (gRPC), HTTP API and metrics — serving the config store
(SQLite in the state dir by default)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]  # no stubs (types-grpcio is not a dependency)
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import Gauge

from tcpmesh.controlplane import MAX_RESOURCES, ControlPlane, XdsOptions
from tcpmesh.httpapi import build_app
from tcpmesh.store import DEFAULT_STATE_DIR, ConfigStore, import_paths, open_store
from tcpmesh.store.configdir import DirectoryInput
from tcpmesh.translator import TranslateOptions
from tcpmesh.translator.service_addresses import DEFAULT_SERVICE_NETWORK
from tcpmesh.translator.workloads import DEFAULT_POD_NETWORK
from tcpmesh.xds.server import DEFAULT_FLOW_TIMEOUT, DEFAULT_MAX_CONCURRENT_PUSHES

__all__ = ["add_arguments", "run", "serve"]

log = logging.getLogger(__name__)
DEFAULT_ADS = "127.0.0.1:15010"
DEFAULT_HTTP = "127.0.0.1:15014"
MAX_GRPC_MESSAGE = 16 * 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="the store (SQLite) lives here (default ./.tcpmesh)"
    )
    parser.add_argument("--store", default=None, help="store URL: sqlite:///path/store.db (default: in --state-dir)")
    parser.add_argument(
        "--seed",
        type=Path,
        action="append",
        help="on the first start only (empty store), import these YAML files or directories (repeatable)",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        help="one-way input: a directory of Istio/Kubernetes YAML applied to the store (tcpmesh never writes there)",
    )
    parser.add_argument("--ads-address", default=DEFAULT_ADS, help=f"gRPC ADS listen address (default {DEFAULT_ADS})")
    parser.add_argument(
        "--http-address", default=DEFAULT_HTTP, help=f"HTTP API / metrics listen address (default {DEFAULT_HTTP})"
    )
    parser.add_argument("--debounce-ms", type=int, default=100, help="quiet period before a reload (default 100)")
    parser.add_argument(
        "--debounce-max-ms",
        type=int,
        default=10_000,
        help="longest a reload waits during steady changes (default 10000)",
    )
    parser.add_argument(
        "--flow-timeout",
        type=float,
        default=DEFAULT_FLOW_TIMEOUT,
        help="seconds a push waits for the previous one of its type to be ACKed/NACKed; 0 turns flow control off "
        f"(default {DEFAULT_FLOW_TIMEOUT})",
    )
    parser.add_argument(
        "--max-concurrent-pushes",
        type=int,
        default=DEFAULT_MAX_CONCURRENT_PUSHES,
        help=f"streams writing pushes at once (default {DEFAULT_MAX_CONCURRENT_PUSHES})",
    )
    parser.add_argument(
        "--max-resources", type=int, default=MAX_RESOURCES, help=f"config resources accepted (default {MAX_RESOURCES})"
    )
    parser.add_argument("--ads-tls-cert", type=Path, help="serve ADS over TLS with this PEM certificate chain")
    parser.add_argument("--ads-tls-key", type=Path, help="PEM private key for --ads-tls-cert")
    parser.add_argument(
        "--ads-tls-client-ca", type=Path, help="require client certificates signed by this PEM CA (mutual TLS)"
    )
    parser.add_argument("--test-hook-nack", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-n", "--namespace", default="default", help="namespace for resources without one")
    parser.add_argument(
        "--pod-network",
        default=DEFAULT_POD_NETWORK,
        help=f"first address of the local pods' loopback range (default {DEFAULT_POD_NETWORK})",
    )
    parser.add_argument(
        "--service-network",
        default=DEFAULT_SERVICE_NETWORK,
        help=f"first address of the loopback range for VIP-less services (default {DEFAULT_SERVICE_NETWORK})",
    )
    parser.add_argument("--ready-file", type=Path, help="write the bound addresses here as JSON once serving")
    parser.add_argument("--log-level", default="INFO")


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def ads_credentials(args: argparse.Namespace) -> Any:
    """Server credentials for ADS from the --ads-tls-* options, or None for plaintext."""
    cert, key, client_ca = args.ads_tls_cert, args.ads_tls_key, args.ads_tls_client_ca
    if cert is None and key is None and client_ca is None:
        return None
    if cert is None or key is None:
        raise ValueError("--ads-tls-cert and --ads-tls-key go together")
    try:
        pair = (key.read_bytes(), cert.read_bytes())
        ca = client_ca.read_bytes() if client_ca is not None else None
    except OSError as exc:
        raise ValueError(f"cannot read ADS TLS material: {exc}") from exc
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve(args: argparse.Namespace, stop: asyncio.Event | None = None) -> int:
    store = open_store(args.store, args.state_dir, args.namespace, max_resources=args.max_resources)
    try:
        return await _serve(args, store, stop)
    finally:
        store.close()


async def _serve(args: argparse.Namespace, store: ConfigStore, stop: asyncio.Event | None) -> int:
    credentials = ads_credentials(args)
    for what, address in (("ADS", args.ads_address), ("HTTP", args.http_address)):
        if not _is_loopback(_split(address)[0]):
            log.warning("%s listens on %s, beyond loopback, as asked", what, address)
    xds_options = XdsOptions(
        flow_timeout=args.flow_timeout if args.flow_timeout > 0 else None,
        max_concurrent_pushes=args.max_concurrent_pushes,
        test_hook_nack=args.test_hook_nack,
    )
    cp = ControlPlane(
        store,
        TranslateOptions(pod_network=args.pod_network, service_network=args.service_network),
        xds_options,
        max_resources=args.max_resources,
    )
    if args.seed and store.revision() == 0:
        seeded = await asyncio.to_thread(import_paths, store, args.seed)
        if not seeded.ok:
            raise ValueError("--seed: " + "; ".join(str(p) for p in seeded.problems if p.is_error))
        log.info("store seeded from %s: %d resources", ", ".join(map(str, args.seed)), len(seeded.items))
    directory: DirectoryInput | None = None
    if args.config_dir is not None:
        directory = DirectoryInput(args.config_dir, store, quiet=args.debounce_ms / 1000)
        rejected = Gauge(
            "tcpmesh_config_dir_rejected_files",
            "Config-directory files whose current content is not served (invalid, unreadable, half-written)",
            registry=cp.metrics.registry,
        )
        rejected.set_function(lambda: float(directory.rejected_files) if directory is not None else 0.0)
        await asyncio.to_thread(directory.scan, settle=False)  # the store holds the last good state meanwhile
    accepted, _ = cp.reload()
    if not accepted:
        log.error("the store's config has errors; serving an empty config until it is fixed")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
        ]
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    ads_port = await cp.xds.start(args.ads_address, server=server, credentials=credentials)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(
        "envoy.service.discovery.v3.AggregatedDiscoveryService", health_pb2.HealthCheckResponse.SERVING
    )

    runner = web.AppRunner(build_app(cp), access_log=None)
    await runner.setup()
    http_host, http_port = _split(args.http_address)
    site = web.TCPSite(runner, http_host, http_port)
    await site.start()
    bound_http = runner.addresses[0][1] if runner.addresses else http_port
    ads_host = _split(args.ads_address)[0]
    ready = {
        "ads": f"{ads_host}:{ads_port}",
        "http": f"{http_host}:{bound_http}",
        "store": store.location,
        "config_dir": str(args.config_dir) if args.config_dir else None,
    }
    print(json.dumps(ready), flush=True)
    if args.ready_file:
        args.ready_file.write_text(json.dumps(ready))
    log.info("serving %s: ADS %s, HTTP %s", store.location, ready["ads"], ready["http"])

    tasks = [asyncio.create_task(cp.watch(args.debounce_ms, stop, max_delay_ms=args.debounce_max_ms))]
    if directory is not None:
        tasks.append(asyncio.create_task(directory.run(stop)))
    stopped = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
        if stopped not in done:
            # A watcher must never end on its own: say so and exit non-zero, so a supervisor restarts us.
            for task in done:
                exc = task.exception()
                log.error("a watcher stopped (%s); exiting", exc or "ended")
            return 1
    finally:
        stopped.cancel()
        for task in tasks:
            task.cancel()
        await health_servicer.enter_graceful_shutdown()
        await runner.cleanup()
        await cp.xds.stop(0.5)
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(serve(args))
    except (OSError, ValueError, sqlite3.Error) as exc:
        print(f"tcpmesh serve: {exc}", file=sys.stderr)
        return 1
