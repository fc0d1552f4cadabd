"""Run the benchmarks, print one table of figures, write them as JSON.

    .venv/bin/python bench/run.py [--quick] [--only NAME ...] [--json bench/results/latest.json]

Each benchmark runs in its own interpreter with a time limit; a benchmark that fails or times out is reported
as such and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BENCH, machine, results_path

BENCHMARKS = ("scale", "start", "incremental", "convergence", "preserve", "fanout", "datapath", "peer", "ha")
TIME_LIMIT_S = {
    "scale": 420,
    "start": 600,
    "incremental": 240,
    "convergence": 1200,
    "preserve": 300,
    "fanout": 720,
    "datapath": 180,
    "peer": 300,
    "ha": 900,
}
QUICK_LIMIT_S = {
    "scale": 120,
    "start": 400,
    "incremental": 120,
    "convergence": 600,
    "preserve": 120,
    "fanout": 300,
    "datapath": 120,
    "peer": 180,
    "ha": 420,
}
"""Quick fan-out still starts 200 streams and an Envoy against 1 000 services: it needs more than two minutes.
Convergence includes a 10 000-service mesh behind a real Envoy: minutes to start and to re-read per edit."""


def _table(rows: list[list[str]]) -> str:
    header = ["bench", "figure", "value", "target", "", "note"]
    rows = [header, *rows]
    widths = [min(max(len(r[i]) for r in rows), 60 if i == 1 else 200) for i in range(len(header))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and counts: about 5 minutes in all")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--json", type=Path, default=results_path("latest.json"), help="where to write figures")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    figures: list[dict[str, Any]] = []
    info = machine()
    print(f"machine: {info}", flush=True)
    started = time.time()
    for name in names:
        print(f"== {name}", flush=True)
        limit = QUICK_LIMIT_S[name] if args.quick else TIME_LIMIT_S[name]
        t0 = time.perf_counter()
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            cmd = [sys.executable, str(BENCH / f"{name}.py"), "--out", tmp.name, *(["--quick"] if args.quick else [])]
            # Own process group: on timeout the benchmark and everything it started (control plane, Envoys,
            # clients) are stopped together, so nothing is left behind.
            proc = subprocess.Popen(cmd, start_new_session=True)
            try:
                code = proc.wait(timeout=limit)
                failed = code != 0
                note = f"exit status {code}" if failed else ""
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                failed, note = True, f"timed out after {limit} s (figures up to then are kept)"
            text = Path(tmp.name).read_text() if Path(tmp.name).exists() else ""
        got = json.loads(text) if text.strip() else []
        figures.extend(got)
        if failed:
            figures.append(
                {"bench": name, "name": "FAILED", "value": None, "unit": "", "target": "", "met": None, "note": note}
            )
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = []
    for f in figures:
        value = f["value"]
        if value is None:
            shown = "n/a"
        elif abs(value) >= 100 or value == int(value):
            shown = f"{value:,.0f}"
        else:
            shown = f"{value:.3g}"
        verdict = "" if f["met"] is None else ("met" if f["met"] else "MISSED")
        rows.append([f["bench"], f["name"], f"{shown} {f['unit']}".strip(), f["target"], verdict, f["note"]])
    print()
    print(_table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": info,
                "quick": args.quick,
                "started": started,
                "elapsed_s": time.time() - started,
                "figures": figures,
            },
            indent=2,
        )
    )
    print(f"\nwrote {args.json} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
