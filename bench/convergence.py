"""convergence: 100 services behind a real Envoy; weight edits through /api/apply; time to ACK and to traffic.

Each change flips one service's VirtualService between 100/0 and 0/100, so a single connection shows which
weights Envoy applies. Times are from just before POST /api/apply to (a) /debug/syncz showing Envoy's ACK of
a new Listener version, (b) the first connection answered by the newly weighted backend. Also reported: the
control plane's own tcpmesh_proxy_convergence_seconds (config accepted → ACK). SotW and delta in one run.
"""

from __future__ import annotations

import os
import re
import socket
import time
from typing import Any

from common import Recorder, median, parse_args, percentile
from envmesh import BenchMesh
from synth import vs_yaml

P50_MS, P99_MS = 50.0, 200.0
CONVERGED_TYPE = "TypedExtensionConfig"


def _exchange(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"hello\n")
        return sock.makefile("rb").readline().decode().strip()


ROUTE_TYPES = ("TypedExtensionConfig", "Listener")
"""Where a weight edit lands: the ECDS TcpProxy config by default (the listener is unchanged), the listener with
--inline-weights."""


def _route_acked(status: dict[str, Any]) -> tuple[str, ...]:
    types = status["proxies"][0]["types"]
    return tuple(str(types.get(t, {}).get("acked")) for t in ROUTE_TYPES)


def _histogram_sum(metrics: str, name: str, type_: str) -> tuple[float, float]:
    total = count = 0.0
    for line in metrics.splitlines():
        m = re.match(rf'{name}_(sum|count)\{{type="{type_}"\}} (\S+)', line)
        if m:
            if m.group(1) == "sum":
                total = float(m.group(2))
            else:
                count = float(m.group(2))
    return total, count


def run(api_type: str, changes: int, rec: Recorder, services: int) -> float | None:
    """The edits at this size; returns the apply → ACK p50 (ms), None if no edit converged."""
    size = f"{services:,}".replace(",", " ")
    label = f"{'delta' if api_type == 'DELTA_GRPC' else 'SotW'}, {size} services"
    # 10 000 services are 50 001 resources: above serve's default --max-resources.
    inline = ("--inline-weights",) if os.environ.get("TCPMESH_BENCH_INLINE") == "1" else ()
    with BenchMesh(services, extra_args=("--max-resources", str(services * 6), *inline)) as mesh:
        mesh.start()
        mesh.start_envoy(api_type)
        mesh.wait_synced(1, timeout=max(60.0, services / 20))  # Envoy takes minutes for 10 000 listeners here
        spec = mesh.spec
        assert spec is not None
        before_metrics = _histogram_sum(mesh.metrics(), "tcpmesh_proxy_convergence_seconds", CONVERGED_TYPE)
        ack_ms: list[float] = []
        traffic_ms: list[float] = []
        response_ms: list[float] = []
        failures = 0
        for k in range(changes):
            i = (k * 37) % services
            to_v2 = k % 2 == 0
            expect = "two" if to_v2 else "one"
            text = vs_yaml(spec, i, 0 if to_v2 else 100, 100 if to_v2 else 0)
            previous = _route_acked(mesh.status())
            t0 = time.perf_counter()
            code, payload = mesh.apply(text)
            responded = time.perf_counter()
            if code != 200:
                raise RuntimeError(f"apply failed: {code} {payload}")
            end = time.monotonic() + max(10.0, services / 500)
            acked = None
            while time.monotonic() < end:
                if _route_acked(mesh.status()) != previous:
                    acked = time.perf_counter()
                    break
                time.sleep(0.004)  # a gentler poll: the control plane shares 2 cores with Envoy and us
            seen = None
            while time.monotonic() < end:
                try:
                    reply = _exchange(spec.port(i))
                except OSError:
                    reply = ""
                if reply.startswith(expect):
                    seen = time.perf_counter()
                    break
            if acked is None or seen is None:
                failures += 1
                continue
            ack_ms.append((acked - t0) * 1000)
            response_ms.append((responded - t0) * 1000)
            traffic_ms.append((seen - t0) * 1000)
        after_metrics = _histogram_sum(mesh.metrics(), "tcpmesh_proxy_convergence_seconds", CONVERGED_TYPE)
    server_mean = (after_metrics[0] - before_metrics[0]) / max(1.0, after_metrics[1] - before_metrics[1]) * 1000
    figures = (
        ("apply → ACK", ack_ms),
        ("apply → first connection on new weights", traffic_ms),
        ("/api/apply response (store write + full reload)", response_ms),
    )
    for what, values in figures:
        if not values:
            rec.add(f"{label}: {what}", None, "ms", note=f"{failures} changes timed out")
            continue
        p50, p99 = median(values), percentile(values, 99)
        is_ack = what == "apply → ACK"
        rec.add(
            f"{label}: {what} p50",
            p50,
            "ms",
            target="≤ 50 ms" if is_ack else "",
            met=(p50 <= P50_MS) if is_ack else None,
            note=f"{len(values)} changes, {services} services, {failures} timed out; max {max(values):.1f} ms",
            values=values,
        )
        rec.add(
            f"{label}: {what} p99",
            p99,
            "ms",
            target="≤ 200 ms" if is_ack else "",
            met=(p99 <= P99_MS) if is_ack else None,
        )
    rec.add(
        f"{label}: control plane's accepted → ECDS ACK (metric mean)",
        server_mean,
        "ms",
        note=f"tcpmesh_proxy_convergence_seconds{{type={CONVERGED_TYPE}}}",
    )
    return median(ack_ms) if ack_ms else None


def main() -> None:
    args = parse_args(__doc__ or "")
    rec = Recorder("convergence")
    changes = 50 if args.quick else 100
    only_large = os.environ.get("TCPMESH_BENCH_ONLY_10K") == "1"  # rerun just the slow 10 000-service arm
    small: dict[str, float | None] = {}
    for api_type in () if only_large else ("GRPC", "DELTA_GRPC"):
        small[api_type] = run(api_type, changes, rec, 100)
    # The same edits at 10 000 services: an edit should cost the same whatever the config size. Delta by default
    # (TCPMESH_BENCH_10K_API=GRPC for SotW: since SotW answers a grown ECDS subscription, and an edit of one
    # config, with just those configs, its initial sync finishes too). TCPMESH_BENCH_INLINE=1 runs every arm with
    # --inline-weights (the edit is then a listener change, and LDS responses carry all 10 000 listeners).
    api_type = os.environ.get("TCPMESH_BENCH_10K_API", "DELTA_GRPC")
    large = run(api_type, 10 if args.quick else 30, rec, 10_000)
    base = small.get(api_type)
    if base and large:
        name = "delta" if api_type == "DELTA_GRPC" else "SotW"
        rec.add(
            f"{name}: apply → ACK p50, 10 000 / 100 services",
            large / base,
            "×",
            target="≤ 1.5×",
            met=large / base <= 1.5,
            note=f"{large:.1f} / {base:.1f} ms, both in this run",
        )
    rec.write(args.out)


if __name__ == "__main__":
    main()
