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


def _exchange(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"hello\n")
        return sock.makefile("rb").readline().decode().strip()


def _listener_acked(status: dict[str, Any]) -> str:
    return str(status["proxies"][0]["types"]["Listener"]["acked"])


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


def run(api_type: str, changes: int, rec: Recorder, services: int) -> None:
    label = "delta" if api_type == "DELTA_GRPC" else "SotW"
    # 10 000 services are 50 001 resources: above serve's default --max-resources.
    with BenchMesh(services, extra_args=("--max-resources", str(services * 6))) as mesh:
        mesh.start()
        mesh.start_envoy(api_type)
        mesh.wait_synced(1, timeout=max(60.0, services / 50))  # Envoy takes minutes for 10 000 listeners here
        spec = mesh.spec
        assert spec is not None
        before_metrics = _histogram_sum(mesh.metrics(), "tcpmesh_proxy_convergence_seconds", "lds")
        ack_ms: list[float] = []
        traffic_ms: list[float] = []
        response_ms: list[float] = []
        failures = 0
        for k in range(changes):
            i = (k * 37) % services
            to_v2 = k % 2 == 0
            expect = "two" if to_v2 else "one"
            text = vs_yaml(spec, i, 0 if to_v2 else 100, 100 if to_v2 else 0)
            previous = _listener_acked(mesh.status())
            t0 = time.perf_counter()
            code, payload = mesh.apply(text)
            responded = time.perf_counter()
            if code != 200:
                raise RuntimeError(f"apply failed: {code} {payload}")
            end = time.monotonic() + max(10.0, services / 500)
            acked = None
            while time.monotonic() < end:
                if _listener_acked(mesh.status()) != previous:
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
        after_metrics = _histogram_sum(mesh.metrics(), "tcpmesh_proxy_convergence_seconds", "lds")
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
        f"{label}: control plane's accepted → LDS ACK (metric mean)",
        server_mean,
        "ms",
        note="tcpmesh_proxy_convergence_seconds{type=lds}",
    )


def main() -> None:
    args = parse_args(__doc__ or "")
    rec = Recorder("convergence")
    changes = 50 if args.quick else 100
    only_large = os.environ.get("TCPMESH_BENCH_ONLY_10K") == "1"  # rerun just the slow 10 000-service arm
    for api_type in () if only_large else ("GRPC", "DELTA_GRPC"):
        run(api_type, changes, rec, 100)
    # The same edits at 10 000 services (SotW): an edit should cost the same whatever the config size.
    run("GRPC", 3 if args.quick else 10, rec, 10_000)
    rec.write(args.out)


if __name__ == "__main__":
    main()
