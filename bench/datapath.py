"""datapath: connections per second and throughput, directly to the echo backend, through Envoy configured by
tcpmesh over ADS, through Envoy with the same config inlined as a static bootstrap (render.static_bootstrap), and
through a static bootstrap of istiod's inline form (``--inline-weights``: no drain filter), which prices the
drain filter.

The backend (bench/echoserver.py, epoll) and the load generator (bench/loadgen.py, threads) are separate
processes; Envoy runs with --concurrency 1. All three paths are measured in one run, alternating, best of R.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BENCH, Recorder, parse_args
from envmesh import distinct_free_ports
from synth import MeshSpec, mesh_yaml

from tcpmesh.model.config import load_config_text
from tcpmesh.render import static_bootstrap
from tcpmesh.runtime.bootstrap import gateway_bootstrap
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts
from tcpmesh.translator import Proxy, TranslateOptions, translate


def _load(args: list[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(BENCH / "loadgen.py"), *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return dict(json.loads(out.stdout))


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"x\n")
                if s.recv(8):
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing echoes on {port}")


def main() -> None:
    args = parse_args(__doc__ or "")
    rec = Recorder("datapath")
    seconds = 3.0 if args.quick else 8.0
    megabytes = 256 if args.quick else 1024
    rounds = 1 if args.quick else 3
    threads = 8
    with tempfile.TemporaryDirectory(prefix="tcpmesh-datapath-") as tmp:
        state = Path(tmp)
        portfile = state / "echo.port"
        echo = subprocess.Popen([sys.executable, str(BENCH / "echoserver.py"), str(portfile)])
        procs: list[Any] = []
        try:
            end = time.monotonic() + 10
            while not portfile.exists() and time.monotonic() < end:
                time.sleep(0.02)
            backend = int(portfile.read_text())
            ads_port, static_port, inline_port = distinct_free_ports(3)
            spec = MeshSpec(
                1, ports=(ads_port,), v1_address="127.0.0.1", v2_address="127.0.0.1", v1_port=backend, v2_port=backend
            )
            text = mesh_yaml(spec, weights={0: (100, 0)})
            (state / "config").mkdir()
            (state / "config" / "mesh.yaml").write_text(text)
            cp = ControlPlaneProcess(state / "config", state, MeshPorts.free())
            cp.start(timeout=60)
            procs.append(cp)
            dyn = EnvoyProcess(
                gateway_bootstrap(ads_port=cp.ports.ads, admin_port=0), work_dir=state / "envoy-ads", admin_port=0
            )
            dyn.start()
            procs.append(dyn)
            static_spec = MeshSpec(
                1,
                ports=(static_port,),
                v1_address="127.0.0.1",
                v2_address="127.0.0.1",
                v1_port=backend,
                v2_port=backend,
            )
            config, problems = load_config_text(mesh_yaml(static_spec, weights={0: (100, 0)}))
            assert not [p for p in problems if p.is_error]
            static = EnvoyProcess(
                static_bootstrap(translate(config, Proxy()), admin_port=0),
                work_dir=state / "envoy-static",
                admin_port=0,
            )
            static.start()
            procs.append(static)
            # istiod's inline form: no drain filter, so this pair prices the drain filter's per-read CEL check.
            inline_spec = dataclasses.replace(static_spec, ports=(inline_port,))
            inline_config, _ = load_config_text(mesh_yaml(inline_spec, weights={0: (100, 0)}))
            inline = EnvoyProcess(
                static_bootstrap(
                    translate(inline_config, Proxy(), TranslateOptions(inline_weights=True)), admin_port=0
                ),
                work_dir=state / "envoy-inline",
                admin_port=0,
            )
            inline.start()
            procs.append(inline)
            for port in (backend, ads_port, static_port, inline_port):
                _wait_port(port)
            paths = {
                "direct to backend": backend,
                "Envoy, tcpmesh ADS config": ads_port,
                "Envoy, static bootstrap": static_port,
                "Envoy, static, inline weights (no drain filter)": inline_port,
            }
            best_cps: dict[str, dict[str, Any]] = {}
            best_tp: dict[str, float] = {}
            for _ in range(rounds):
                for name, port in paths.items():
                    r = _load(["conn", str(port), str(seconds), str(threads), "200000"], seconds + 60)
                    r["cps"] = r["connections"] / r["seconds"]
                    if name not in best_cps or r["cps"] > best_cps[name]["cps"]:
                        best_cps[name] = r
                    t = _load(["bytes", str(port), str(megabytes)], 120)
                    mbps = t["bytes"] / t["seconds"] / 2**20
                    best_tp[name] = max(best_tp.get(name, 0.0), mbps)
            direct_cps = best_cps["direct to backend"]["cps"]
            direct_tp = best_tp["direct to backend"]
            for name in paths:
                r = best_cps[name]
                rec.add(
                    f"{name}: connections/s",
                    r["cps"],
                    "conn/s",
                    note=f"{threads} client threads, {seconds:.0f} s; latency p50 {r['p50_ms']:.2f} ms, "
                    f"p99 {r['p99_ms']:.2f} ms; {r['errors']} errors; {r['cps'] / direct_cps:.2f}× direct",
                )
                rec.add(
                    f"{name}: throughput (one connection, echoed)",
                    best_tp[name],
                    "MiB/s",
                    note=f"{megabytes} MiB each way; {best_tp[name] / direct_tp:.2f}× direct",
                )
        finally:
            for p in reversed(procs):
                p.stop()
            for p in procs:
                if isinstance(p, EnvoyProcess):
                    p.close()
            echo.kill()
            echo.wait()
    rec.write(args.out)


if __name__ == "__main__":
    main()
