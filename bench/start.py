"""start: a real control-plane start from its store, beside the protobuf floor built in the same run.

A SQLite store of N synthetic services (bench/synth.py) is built through the store API, in changes of 500
services, as users would apply them. Then `tcpmesh serve --state-dir` is started as a process and timed from
its start to the ready file (the store read, parsed and validated, the config accepted, ADS listening) and to a
raw ADS client, a gateway proxy connecting since the process started, holding its N listeners (translated,
serialised, sent). Three starts of the same store: the first after it was built, then a restart that must
translate (--no-saved-snapshots), then a restart that serves the snapshots the first one saved when it stopped
(saved_snapshots.py) while it reads and translates the config. The floor is the same
messages built by hand (bench/floor.py), best of three, in this process. tcpmesh's bytecode is compiled first,
as an installed package's is: a start that compiles its sources measures the interpreter, not the start.

    .venv/bin/python bench/start.py [--quick] [--profile]
"""

from __future__ import annotations

import asyncio
import compileall
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, Recorder, parse_args, results_path
from envmesh import distinct_free_ports

TARGET_RATIO = 2.0
PER_CHANGE = 500
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
START_LIMIT_S = 300.0
RUNS = {
    "first start (translates)": True,
    "restart, --no-saved-snapshots (translates)": False,
    "restart (serves the snapshots saved at the stop)": True,
}
"""Each start of the store, in order, and whether it may use the saved snapshots (the first has none yet)."""


def build_store(state_dir: Path, n: int) -> float:
    """The synthetic mesh of `n` services applied to a new store under `state_dir`; returns the seconds taken."""
    from synth import MeshSpec, mesh_files

    from tcpmesh.store import open_store

    store = open_store(None, state_dir, max_resources=n * 6)
    t0 = time.perf_counter()
    try:
        for name, text in mesh_files(MeshSpec(n), per_file=PER_CHANGE).items():
            result = store.apply(text, source=name)
            if not result.ok:
                raise RuntimeError(f"{name}: {[str(p) for p in result.problems[:3]]}")
    finally:
        store.close()
    return time.perf_counter() - t0


async def _first_listeners(address: str, expected: int, limit: float) -> float:
    """Seconds until a gateway proxy's SotW stream holds `expected` listeners (perf_counter at that moment)."""
    import grpc  # type: ignore[import-untyped,unused-ignore]
    from adsclients import _node
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    queue: asyncio.Queue[Any] = asyncio.Queue()
    # As Envoy: clusters and listeners, then the endpoints of the EDS clusters (the server holds listeners back
    # until the clusters they name are acknowledged: make-before-break).
    queue.put_nowait(discovery_pb2.DiscoveryRequest(type_url=CDS, node=_node(0)))
    queue.put_nowait(discovery_pb2.DiscoveryRequest(type_url=LDS))
    eds: list[str] = []

    async def requests() -> Any:
        while True:
            yield await queue.get()

    # The stream is opened before the server listens, as a proxy that reconnects to a restarting control plane:
    # it waits for the server (wait_for_ready), retrying every 50 ms rather than gRPC's default 1 s backoff.
    options = [("grpc.max_receive_message_length", 1 << 30), ("grpc.initial_reconnect_backoff_ms", 50),
               ("grpc.min_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 50)]  # fmt: skip
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.StreamAggregatedResources(requests(), wait_for_ready=True)

        async def wait() -> float:
            async for resp in call:
                if resp.type_url == CDS and not eds:
                    for any_ in resp.resources:
                        cluster = cluster_pb2.Cluster.FromString(any_.value)
                        if cluster.type == cluster_pb2.Cluster.EDS:
                            eds.append(cluster.eds_cluster_config.service_name or cluster.name)
                    queue.put_nowait(discovery_pb2.DiscoveryRequest(type_url=EDS, resource_names=eds))
                queue.put_nowait(
                    discovery_pb2.DiscoveryRequest(
                        type_url=resp.type_url, version_info=resp.version_info, response_nonce=resp.nonce,
                        resource_names=eds if resp.type_url == EDS else [],
                    )
                )  # fmt: skip
                if resp.type_url == LDS and len(resp.resources) >= expected:
                    return time.perf_counter()
            raise RuntimeError("the ADS stream ended before the listeners came")

        try:
            return await asyncio.wait_for(wait(), limit)
        finally:
            call.cancel()


def start_once(state_dir: Path, n: int, profile: Path | None, saved: bool = True) -> dict[str, float]:
    """One `tcpmesh serve` of the store: seconds to the ready file and to the listeners of a gateway proxy that
    was connecting since the start. `saved`: serve the snapshots saved at the last stop (the default)."""
    ready = state_dir / "ready.json"
    ready.unlink(missing_ok=True)
    (ads_port,) = distinct_free_ports(1)
    address = f"127.0.0.1:{ads_port}"
    serve = ["serve", "--state-dir", str(state_dir), "--ready-file", str(ready), "--max-resources", str(n * 6),
             "--ads-address", address, "--http-address", "127.0.0.1:0", "--inline-weights",
             "--log-level", "WARNING", "--saved-snapshots" if saved else "--no-saved-snapshots"]  # fmt: skip
    prefix = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "tcpmesh"] if profile else [
        sys.executable, "-m", "tcpmesh"]  # fmt: skip
    # Bytecode as an installed package has it (main compiles it): this environment may set PYTHONDONTWRITEBYTECODE,
    # and without .pyc files both the process and its translation worker compile tcpmesh (~0.2 s each).
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    t0 = time.perf_counter()
    proc = subprocess.Popen([*prefix, *serve], env=env, stdout=subprocess.DEVNULL, cwd=state_dir)
    proxy = pool.submit(asyncio.run, _first_listeners(address, n, START_LIMIT_S))
    try:
        end = time.monotonic() + START_LIMIT_S
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"tcpmesh serve exited with {proc.returncode} before it was ready")
            if time.monotonic() > end:
                raise RuntimeError(f"not ready in {START_LIMIT_S:.0f} s")
            time.sleep(0.01)
        t_ready = time.perf_counter()
        t_listeners = proxy.result(START_LIMIT_S)
    finally:
        proc.terminate()  # SIGTERM: a clean stop, so cProfile writes its file
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        pool.shutdown(wait=True)
    return {"ready_s": t_ready - t0, "listeners_s": t_listeners - t0}


def floor_seconds(n: int, rounds: int) -> float:
    from floor import build_floor
    from synth import MeshSpec

    spec = MeshSpec(n)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        built = build_floor(spec)
        _ = [[m.SerializeToString(deterministic=True) for m in ms] for ms in built]
        best = min(best, time.perf_counter() - t0)
        del built
    return best


def main() -> None:
    args = parse_args(__doc__ or "", [a for a in sys.argv[1:] if a != "--profile"])
    profiling = "--profile" in sys.argv[1:]
    rec = Recorder("start")
    n = 10_000
    compileall.compile_dir(ROOT / "tcpmesh", quiet=1)  # into tcpmesh/**/__pycache__, as `pip install` does
    with tempfile.TemporaryDirectory(prefix="tcpmesh-start-") as tmp:
        state_dir = Path(tmp)
        t_build = build_store(state_dir, n)
        db = state_dir / "store.db"
        rec.add(f"N={n} build the store (apply in changes of {PER_CHANGE} services)", t_build, "s",
                note=f"{db.stat().st_size / 1e6:.0f} MB")  # fmt: skip
        floor = floor_seconds(n, 2 if args.quick else 3)
        runs = []
        for k, saved in enumerate(RUNS.values()):
            profile = results_path(f"start-profile-{k}.pstats") if profiling else None
            runs.append(start_once(state_dir, n, profile, saved))
        floor_after = floor_seconds(n, 1 if args.quick else 2)
    floor = min(floor, floor_after)
    rec.add(f"N={n} floor (hand-built protos) build+serialise", floor, "s", note="best of the rounds, same run")
    for what, r in zip(RUNS, runs, strict=True):
        rec.add(f"N={n} serve from the store, {what}: process start → ready", r["ready_s"], "s")
        ratio = r["listeners_s"] / floor
        rec.add(
            f"N={n} serve from the store, {what}: process start → gateway's listeners / floor",
            ratio,
            "×",
            target=f"≤ {TARGET_RATIO}×",
            met=ratio <= TARGET_RATIO,
            note=f"{r['listeners_s']:.2f} s (ready at {r['ready_s']:.2f} s), floor {floor:.2f} s, same run",
            **r,
        )
    rec.write(args.out)


if __name__ == "__main__":
    main()
