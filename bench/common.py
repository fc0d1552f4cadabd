"""Shared helpers for the benchmarks: figures, timing, memory, process hygiene.

Every benchmark module is a script: ``python bench/<name>.py [--quick] --out FILE`` writes a JSON list of
figures; ``bench/run.py`` runs each in its own interpreter (so peak memory and CPU are attributable).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent


def results_path(name: str) -> Path:
    """bench/results/<name>, creating bench/results/ (it is not in git, so a fresh clone has none)."""
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    return results / name


if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Figure:
    bench: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> list[str]:
        if self.value is None:
            shown = "n/a"
        elif abs(self.value) >= 100 or self.value == int(self.value):
            shown = f"{self.value:,.0f}"
        else:
            shown = f"{self.value:.3g}"
        verdict = "" if self.met is None else ("met" if self.met else "MISSED")
        return [self.bench, self.name, f"{shown} {self.unit}".strip(), self.target, verdict, self.note]


class Recorder:
    """Collects a benchmark's figures, prints them as they come, writes them as JSON."""

    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.figures: list[Figure] = []

    def add(
        self,
        name: str,
        value: float | None,
        unit: str,
        *,
        target: str = "",
        met: bool | None = None,
        note: str = "",
        **extra: Any,
    ) -> Figure:
        fig = Figure(self.bench, name, value, unit, target, met, note, dict(extra))
        self.figures.append(fig)
        print("  " + " | ".join(c for c in fig.row()[1:] if c), flush=True)
        if _OUT:
            self.write(_OUT[0])
        return fig

    def write(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps([asdict(f) for f in self.figures], indent=2))


_OUT: list[Path] = []
"""Where figures are written as they come (set by parse_args), so a benchmark stopped by its time limit keeps
the figures it already had."""


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller and shorter (the whole suite in ~2 min)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.out is not None:
        _OUT[:] = [args.out]
    return args


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (psutil if installed, else /proc)."""
    try:
        import psutil

        return int(psutil.Process(pid or os.getpid()).memory_info().rss)
    except ImportError:
        page = os.sysconf("SC_PAGE_SIZE")
        with open(f"/proc/{pid or os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * page


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process so far (children not included)."""
    try:
        import psutil

        t = psutil.Process(pid or os.getpid()).cpu_times()
        return float(t.user + t.system)
    except ImportError:
        with open(f"/proc/{pid or os.getpid()}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[Any]:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_rss_bytes(pid: int) -> int:
    """Memory of a control plane and its worker processes (the translation worker and the forkserver it is
    forked from): the sum of their proportional set sizes, so pages they share count once (psutil; without
    it, the process's own RSS)."""
    try:
        import psutil

        total = 0
        for proc in _tree(pid):
            try:
                total += int(getattr(proc.memory_full_info(), "pss", proc.memory_info().rss))
            except psutil.Error:
                continue
        return total
    except ImportError:
        return rss_bytes(pid)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a control plane and its worker processes so far."""
    try:
        import psutil

        total = 0.0
        for proc in _tree(pid):
            try:
                t = proc.cpu_times()
                total += float(t.user + t.system)
            except psutil.Error:
                continue
        return total
    except ImportError:
        return cpu_seconds(pid)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_gib": round(mem / 2**30, 1),
        "python": sys.version.split()[0],
    }


def deadline(seconds: float) -> Callable[[], bool]:
    """A predicate that turns true once ``seconds`` have passed: bounds every load loop in time."""
    end = time.monotonic() + seconds
    return lambda: time.monotonic() > end
