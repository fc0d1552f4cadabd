"""fanout: many ADS streams (raw clients that ACK like Envoy, in a separate process) plus a few real Envoys on one
control plane; one VirtualService edit → every stream ACKs the new listeners. Control-plane CPU and memory (the
serving process and its translation worker processes: CPU summed, memory as the sum of their PSS).

The control plane is ``tcpmesh serve`` in its own process; the clients are bench/adsclients.py in another, so the
CPU figures are the control plane's alone. "All ACKed" is confirmed on the server (/debug/syncz: every stream's
acked Listener version is the new one); per-stream times are when each client received the new listeners.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from common import BENCH, Recorder, median, parse_args, percentile, results_path
from common import tree_cpu_seconds as cpu_seconds
from common import tree_rss_bytes as rss_bytes
from envmesh import BenchMesh
from synth import vs_yaml

ALL_ACKED_S = 2.0
RSS_LIMIT = 500 * 2**20


def _listener_versions(status: dict[str, Any]) -> list[str | None]:
    return [p["types"].get("Listener", {}).get("acked") for p in status["proxies"]]


def _profile_path(label: str) -> Any:

    slug = "".join(c if c.isalnum() else "-" for c in label).strip("-")
    return results_path(f"fanout-profile-{slug}.txt")


def _start_py_spy(pid: int, label: str) -> subprocess.Popen[bytes] | None:
    """Sample the control plane for a few seconds around the change (py-spy, if installed)."""
    import shutil

    exe = shutil.which("py-spy") or str(BENCH.parent / ".venv" / "bin" / "py-spy")
    try:
        path = _profile_path(label).with_suffix(".raw")
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [exe, "record", "--pid", str(pid), "--duration", "8", "--rate", "200", "--format", "raw", "-o", str(path)]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _summarise_py_spy(label: str) -> None:
    """Collapsed stacks → the functions with the most samples (self and inclusive), as text beside the figures."""
    raw = _profile_path(label).with_suffix(".raw")
    if not raw.exists():
        return
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] if " (" in f else f for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + count
    lines = [f"py-spy, control plane, 8 s around one change ({label}); {total} samples", "", "inclusive:"]
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:25]:
        lines.append(f"  {100 * n / max(total, 1):5.1f}%  {frame}")
    lines += ["", "self:"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
        lines.append(f"  {100 * n / max(total, 1):5.1f}%  {frame}")
    _profile_path(label).write_text("\n".join(lines) + "\n")


def _errors(errors: list[str]) -> str:
    """One line per distinct client-side stream error (gRPC status and details)."""
    short = [" ".join(part.strip() for part in e.splitlines()[:3]) for e in errors]
    return "; ".join(short) or "none"


def run(rec: Recorder, services: int, streams: int, mode: str, envoys: int) -> None:
    # Inline weights: the raw clients subscribe to CDS, EDS and LDS only, so the edit must change a listener (with
    # the default ECDS form it changes only a TypedExtensionConfig, which they never ask for).
    with BenchMesh(services, extra_args=("--inline-weights",)) as mesh:
        mesh.start()
        assert mesh.control_plane is not None
        assert mesh.control_plane.process is not None
        assert mesh.spec is not None
        pid = mesh.control_plane.process.pid
        rss0, cpu0 = rss_bytes(pid), cpu_seconds(pid)
        clients = subprocess.Popen(
            [sys.executable, str(BENCH / "adsclients.py"), f"127.0.0.1:{mesh.ports.ads}", str(streams), mode,
             str(max(1, streams // 50)), str(services)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert clients.stdin is not None
            assert clients.stdout is not None
            for k in range(envoys):
                mesh.start_envoy("DELTA_GRPC" if mode == "delta" else "GRPC", name=f"gw-{k}")
            synced = json.loads(clients.stdout.readline())
            label = f"{mode}, {streams} streams + {envoys} Envoys, {services} services"
            if synced["synced"] is None:
                st = mesh.status()
                rss = rss_bytes(pid)
                rec.add(
                    f"{label}: streams synced within the clients' limit",
                    synced["streams"],
                    f"of {streams}",
                    note=f"{len(st['proxies'])} proxies connected; control-plane CPU {cpu_seconds(pid) - cpu0:.1f} s; "
                    f"stream errors: {_errors(synced.get('errors', []))}",
                )
                rec.add(
                    f"{label}: control-plane RSS",
                    rss / 2**20,
                    "MiB",
                    target="≤ 500 MB",
                    met=rss <= RSS_LIMIT,
                    note=f"{rss0 / 2**20:.0f} MiB before any stream",
                )
                return
            try:
                mesh.wait_synced(streams + envoys, timeout=120)
            except TimeoutError:
                connected = len(mesh.status()["proxies"])
                rec.add(
                    f"{mode}, {streams} streams + {envoys} Envoys, {services} services: initial sync",
                    None,
                    "s",
                    note=f"not all synced in time: {connected} proxies connected, clients report "
                    f"{synced['streams']} synced; errors {synced.get('errors')}",
                )
                return
            rss1, cpu1 = rss_bytes(pid), cpu_seconds(pid)
            label = f"{mode}, {streams} streams + {envoys} Envoys, {services} services"
            if synced["synced"] is None:
                rec.add(f"{label}: initial sync", None, "s", note=f"only {synced['streams']} streams synced in time")
                return
            rec.add(
                f"{label}: initial sync of all streams",
                synced["synced"],
                "s",
                note=f"control-plane CPU {cpu1 - cpu0:.1f} s",
            )
            before = _listener_versions(mesh.status())
            clients.stdin.write("MARK\n")
            clients.stdin.flush()
            time.sleep(0.05)
            t0_wall = time.time()
            t0 = time.perf_counter()
            cpu_a = cpu_seconds(pid)
            spy = _start_py_spy(pid, label)
            code, payload = mesh.apply(vs_yaml(mesh.spec, services // 2, 0, 100))
            if code != 200:
                raise RuntimeError(f"apply failed: {payload}")
            t_applied = time.perf_counter() - t0
            all_acked = None
            end = time.monotonic() + 60
            while time.monotonic() < end:
                now = _listener_versions(mesh.status())
                if len(now) >= streams + envoys and all(v is not None and v not in before for v in now):
                    all_acked = time.perf_counter() - t0
                    break
                time.sleep(0.05)
            cpu_b = cpu_seconds(pid)
            if spy is not None:
                spy.wait(timeout=60)
                _summarise_py_spy(label)
            got = json.loads(clients.stdout.readline())
            clients.stdin.write("STOP\n")
            clients.stdin.flush()
            per_stream = [(t - t0_wall) * 1000 for t in got["lds_after_mark"]]
            rss2 = rss_bytes(pid)
            rec.add(
                f"{label}: one change → all ACKed (server view)",
                all_acked,
                "s",
                target="≤ 2 s",
                met=all_acked is not None and all_acked <= ALL_ACKED_S,
                note=f"/api/apply returned after {t_applied * 1000:.0f} ms; control-plane CPU for the change "
                f"{cpu_b - cpu_a:.2f} s; {got['missing']} streams missed it",
            )
            if per_stream:
                rec.add(f"{label}: new listeners received per stream p50", median(per_stream), "ms")
                rec.add(f"{label}: new listeners received per stream p99", percentile(per_stream, 99), "ms")
            rec.add(
                f"{label}: control-plane RSS",
                rss2 / 2**20,
                "MiB",
                target="≤ 500 MB" if streams >= 1000 and services >= 1000 else "",
                met=(rss2 <= RSS_LIMIT) if streams >= 1000 and services >= 1000 else None,
                note=f"{rss0 / 2**20:.0f} MiB before any stream, {rss1 / 2**20:.0f} MiB after the initial sync",
            )
        finally:
            if clients.poll() is None:
                try:
                    clients.communicate("STOP\nSTOP\n", timeout=30)
                except subprocess.TimeoutExpired:
                    clients.kill()
                    clients.wait()


def main() -> None:
    args = parse_args(__doc__ or "")
    rec = Recorder("fanout")
    if args.quick:
        run(rec, 1000, 200, "delta", 1)
    else:
        run(rec, 1000, 1000, "delta", 3)
        if os.environ.get("TCPMESH_BENCH_FANOUT_ONLY_1000") != "1":  # the case alone, for a rerun
            run(rec, 1000, 300, "delta", 2)
            run(rec, 1000, 300, "sotw", 1)
    rec.write(args.out)


if __name__ == "__main__":
    main()
