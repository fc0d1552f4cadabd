"""`tcpmesh serve`: the control plane alone — ADS (gRPC), HTTP API and metrics — serving the config store
(SQLite in the state dir by default)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ipaddress
import json
import logging
import signal
import sqlite3
import ssl
import sys
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]  # no stubs (types-grpcio is not a dependency)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import Gauge

from tcpmesh.apitoken import TOKEN_FILE_NAME, ApiPolicy, load_or_create_token
from tcpmesh.commands.offline import add_inline_weights_argument
from tcpmesh.controlplane import MAX_RESOURCES, ControlPlane, XdsOptions
from tcpmesh.publisher import TranslatorFactory
from tcpmesh.saved_snapshots import SNAPSHOT_FILE, SnapshotFile
from tcpmesh.store import DEFAULT_STATE_DIR, ConfigStore, StoreUnavailable, import_paths, open_store
from tcpmesh.store.configdir import DirectoryInput
from tcpmesh.traffic import Route, ServedRoutes, TrafficView
from tcpmesh.translator import TranslateOptions
from tcpmesh.translator.service_addresses import DEFAULT_SERVICE_NETWORK
from tcpmesh.translator.workloads import DEFAULT_POD_NETWORK
from tcpmesh.xds.server import DEFAULT_FLOW_TIMEOUT, DEFAULT_MAX_CONCURRENT_PUSHES

__all__ = ["add_arguments", "run", "serve"]

log = logging.getLogger(__name__)
DEFAULT_ADS = "127.0.0.1:15010"
DEFAULT_HTTP = "127.0.0.1:15014"
MAX_GRPC_MESSAGE = 16 * 1024 * 1024
MAX_GRPC_SEND = 256 * 1024 * 1024
"""What we send may be larger than what we accept: a delta stream's first answer carries every cluster at once
(30 001 at 10 000 services, over 16 MiB with their Resource wrappers); Envoy takes it, a 16 MiB cap refused it
and Envoy reconnected in a loop."""


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
    add_http_security_arguments(parser)
    add_inline_weights_argument(parser)
    parser.add_argument(
        "--translate-in",
        choices=("process", "thread"),
        default="process",
        help="where translation runs: a worker process (default; the event loop stays responsive while a large "
        "config translates) or a thread of this process (one process, less memory)",
    )
    parser.add_argument(
        "--saved-snapshots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"save the published snapshots in the state dir ({SNAPSHOT_FILE}) and, on a start whose config and "
        "code are those they were saved for, serve them at once while the config translates (default: on)",
    )
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


def add_http_security_arguments(parser: argparse.ArgumentParser) -> None:
    """HTTP API access flags (README, Security); `tcpmesh up` has --token-file only (it binds loopback)."""
    parser.add_argument(
        "--token-file",
        type=Path,
        help=f"bearer token for the HTTP API, created (mode 0600) on first start "
        f"(default {DEFAULT_STATE_DIR / TOKEN_FILE_NAME})",
    )
    parser.add_argument(
        "--http-allowed-hosts",
        default="",
        metavar="NAME,...",
        help="host names besides the bound address that requests may name in their Host header",
    )
    parser.add_argument("--http-tls-cert", type=Path, help="serve the HTTP API over TLS with this PEM certificate")
    parser.add_argument("--http-tls-key", type=Path, help="PEM private key for --http-tls-cert")


def token_path(args: argparse.Namespace) -> Path:
    """--token-file, else ``token`` in the state dir (a --state-dir flag where the command has one)."""
    if args.token_file is not None:
        return Path(args.token_file)
    return Path(getattr(args, "state_dir", None) or DEFAULT_STATE_DIR) / TOKEN_FILE_NAME


def http_tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    cert, key = args.http_tls_cert, args.http_tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--http-tls-cert and --http-tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the HTTP TLS certificate/key: {exc}") from exc
    return context


def api_policy(args: argparse.Namespace, tls: bool) -> ApiPolicy:
    names = frozenset(n.strip().lower().rstrip(".") for n in args.http_allowed_hosts.split(",") if n.strip())
    return ApiPolicy(
        token=load_or_create_token(token_path(args)),
        bind_host=_split(args.http_address)[0].lower(),
        allowed_hosts=names,
        tls=tls,
    )


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


async def serve(
    args: argparse.Namespace, stop: asyncio.Event | None = None, *, translators: TranslatorFactory | None = None
) -> int:
    """Serve until `stop` (or SIGINT/SIGTERM). `translators` replaces the per-group translator (tests)."""
    # Bad TLS options are refused before anything is created in the state dir.
    tls = (ads_credentials(args), http_tls_context(args))
    store = open_store(args.store, args.state_dir, args.namespace, max_resources=args.max_resources, view_file=True)
    try:
        return await _serve(args, store, stop, translators, tls)
    finally:
        try:
            await asyncio.to_thread(store.save_view)
        except Exception:  # a cache: a failed save costs the next start its head start, nothing else
            log.exception("saving the parsed view failed")
        store.close()


async def _serve(
    args: argparse.Namespace,
    store: ConfigStore,
    stop: asyncio.Event | None,
    translators: TranslatorFactory | None,
    tls: tuple[Any, ssl.SSLContext | None],
) -> int:
    credentials, http_tls = tls
    policy = api_policy(args, tls=http_tls is not None)
    for what, address in (("ADS", args.ads_address), ("HTTP", args.http_address)):
        if not _is_loopback(_split(address)[0]):
            log.warning("%s listens on %s, beyond loopback, as asked", what, address)
    if args.ads_tls_client_ca is None:
        log.warning(
            "ADS has no client certificates (--ads-tls-client-ca): any process that reaches %s can pose as any "
            "proxy and receive its config",
            args.ads_address,
        )
    else:
        log.info("ADS mutual TLS: each proxy may only claim the namespace/workload of its certificate's SAN")
    xds_options = XdsOptions(
        flow_timeout=args.flow_timeout if args.flow_timeout > 0 else None,
        max_concurrent_pushes=args.max_concurrent_pushes,
    )
    cp = ControlPlane(
        store,
        TranslateOptions(
            pod_network=args.pod_network, service_network=args.service_network, inline_weights=args.inline_weights
        ),
        xds_options,
        max_resources=args.max_resources,
        translators=translators,
        worker=args.translate_in,
        saved=SnapshotFile(store.directory / SNAPSHOT_FILE) if args.saved_snapshots else None,
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
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
            ("grpc.max_send_message_length", MAX_GRPC_SEND),
        ]
    )
    routes = ServedRoutes()
    traffic = TrafficView(lambda node_id: _synced_routes(cp, node_id, routes))
    traffic.sink.add_to_server(server)  # Envoy's metrics_service stats sink, on the ADS port
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    async def start_ads() -> int:
        port = await cp.xds.start(args.ads_address, server=server, credentials=credentials)
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set(
            "envoy.service.discovery.v3.AggregatedDiscoveryService", health_pb2.HealthCheckResponse.SERVING
        )
        return port

    # Snapshots saved when this content was last served go out before the config is even parsed. Proxies that
    # connect before the config is accepted are held (none is served a config that was not), and the worker
    # translates them for the store's config as soon as it has read it, beside this process's own read.
    restored = await asyncio.to_thread(cp.restore)
    # The HTTP API's imports, on a thread while the config is read: after it they would hold the event loop
    # just as the first snapshots go out.
    http_imported = asyncio.ensure_future(asyncio.to_thread(importlib.import_module, "tcpmesh.httpapi"))
    ads_port = await start_ads()
    try:
        accepted, _ = await asyncio.to_thread(cp.reload)
    except BaseException:
        await cp.xds.stop(0)  # the server is already up: stop it (and the worker) before the error ends serve
        cp.close()
        raise
    if not accepted:
        serving = "the saved snapshots" if restored else "an empty config"
        log.error("the store's config has errors; serving %s until it is fixed", serving)
        cp.serve_unaccepted()

    await http_imported
    runner, bound_http = await _start_http(cp, policy, traffic, args.http_address, http_tls)
    http_host = _split(args.http_address)[0]
    ads_host = _split(args.ads_address)[0]
    ready = {
        "ads": f"{ads_host}:{ads_port}",
        "http": f"{http_host}:{bound_http}",
        "store": store.location,
        "config_dir": str(args.config_dir) if args.config_dir else None,
        "token_file": str(token_path(args).resolve()),
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
        cp.close()
    return 0


async def _start_http(
    cp: ControlPlane, policy: ApiPolicy, traffic: TrafficView, address: str, http_tls: ssl.SSLContext | None
) -> tuple[Any, int]:
    """The HTTP API, listening: its runner and bound port. aiohttp is imported once the translation worker has
    started (cp.restore): its ~0.1 s of imports would otherwise delay the worker's start, and with it every
    proxy's first config."""
    from aiohttp import web

    from tcpmesh.apiauth import MalformedRequestFilter
    from tcpmesh.httpapi import TRAFFIC, build_app

    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())
    app = build_app(cp, policy)
    app[TRAFFIC] = traffic
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = _split(address)
    site = web.TCPSite(runner, host, port, ssl_context=http_tls)
    await site.start()
    return runner, runner.addresses[0][1] if runner.addresses else port


def _synced_routes(cp: ControlPlane, node_id: str, served: ServedRoutes) -> dict[str, Route] | None:
    """The routes a proxy is served, once it has ACKed everything it was sent (None before)."""
    for status in cp.xds.status(node_id):  # one node's: a report per proxy per second, 1 000 streams
        if status.node_id == node_id:
            if any(t.state.value not in ("SYNCED", "NOT_SENT") for t in status.types.values()):
                return None
            snapshot = cp.xds.snapshot(node_id)
            return served(snapshot) if snapshot is not None else None
    return None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(serve(args))
    except (OSError, ValueError, sqlite3.Error, StoreUnavailable) as exc:
        print(f"tcpmesh serve: {exc}", file=sys.stderr)
        return 1
