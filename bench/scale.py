"""scale: translate + serialise N synthetic TCP services, beside the floor (the same protos built by hand).

Each N runs in a fresh interpreter. Times are the best of R rounds (translator and floor interleaved, same
process); memory is the tracemalloc peak of one round and the RSS growth over it.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from common import BENCH, Recorder, parse_args, results_path, rss_bytes, timed

TARGET_S = 1.0
TARGET_RATIO = 0.7
"""Full translate + serialise vs the hand-built protobuf floor (issue 15: templated or cached bytes can beat it)."""
TARGET_START_RATIO = 2.0


def _config(n: int) -> tuple[Any, float, float]:
    """The mesh as a Config, through the real reader: (config, yaml seconds, parse+validate seconds)."""
    from synth import MeshSpec, gateway_yaml, service_yaml, vs_yaml

    from tcpmesh.model.config import Config, parse_documents
    from tcpmesh.model.yamlsource import load_yaml_text

    spec = MeshSpec(n)
    texts = [gateway_yaml(spec)]
    chunk = 1000  # files of 1000 services (4000 documents), under the 10 000-documents-per-file limit
    for start in range(0, n, chunk):
        texts.append(
            "---\n".join(
                service_yaml(spec, i) + "---\n" + vs_yaml(spec, i) for i in range(start, min(n, start + chunk))
            )
        )
    t0 = time.perf_counter()
    documents = []
    for k, text in enumerate(texts):
        docs, problems = load_yaml_text(text, f"bench-{k}.yaml")
        assert not problems, problems[:3]
        documents.extend(docs)
    t1 = time.perf_counter()
    resources, problems = parse_documents(documents)
    config = Config.of(resources)
    t2 = time.perf_counter()
    assert not [p for p in problems if p.is_error], problems[:3]
    return config, t1 - t0, t2 - t1


def _translate(config: Any, *, pause_gc: bool = False) -> tuple[Any, float, float]:
    """Index, then translate; ``pause_gc`` pauses the cyclic GC around ``translate_indexed`` only, as
    the old ``ControlPlane._generate`` did (the index is built at reload, serialisation happens in the xDS layer)."""
    from tcpmesh.translator import Proxy, TranslateOptions
    from tcpmesh.translator.index import build_index
    from tcpmesh.translator.translate import translate_indexed

    t0 = time.perf_counter()
    # Inline weights: the floor builds istiod's inline tcp_proxy form, so the bytes compare like with like.
    index = build_index(config, TranslateOptions(inline_weights=True))
    t1 = time.perf_counter()
    if pause_gc:
        gc.disable()
    try:
        out = translate_indexed(index, Proxy())
    finally:
        gc.enable()
    t2 = time.perf_counter()
    return out, t1 - t0, t2 - t1


def _serialise(groups: Any) -> tuple[float, list[list[bytes]]]:
    return timed(lambda: [[m.SerializeToString(deterministic=True) for m in ms] for ms in groups])


def worker(n: int, rounds: int, profile_path: Path | None) -> dict[str, Any]:
    from floor import build_floor
    from synth import MeshSpec

    config, t_yaml, t_parse = _config(n)
    spec = MeshSpec(n)
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = min(best.get(name, float("inf")), value)

    out_bytes: list[list[bytes]] = []
    floor_bytes: list[list[bytes]] = []
    for _ in range(rounds):
        gc.collect()
        out, t_index, t_build = _translate(config)
        t_ser, out_bytes = _serialise((out.listeners, out.clusters, out.endpoints))
        keep("index", t_index)
        keep("build", t_build)
        keep("serialise", t_ser)
        keep("translate_total", t_index + t_build + t_ser)
        del out
        gc.collect()
        out, t_index, t_build = _translate(config, pause_gc=True)
        t_ser, _ = _serialise((out.listeners, out.clusters, out.endpoints))
        keep("gc_paused_build", t_build)
        keep("gc_paused_total", t_index + t_build + t_ser)
        del out
        gc.collect()
        t_floor, floor = timed(lambda: build_floor(spec))
        t_fser, floor_bytes = _serialise(floor)
        keep("floor_build", t_floor)
        keep("floor_serialise", t_fser)
        keep("floor_total", t_floor + t_fser)
        del floor
        gc.collect()
        gc.disable()  # the floor's build under the same condition as gc_paused_build
        try:
            t_floor, floor = timed(lambda: build_floor(spec))
        finally:
            gc.enable()
        t_fser, _ = _serialise(floor)
        keep("floor_gc_paused_total", t_floor + t_fser)
        del floor
    same = out_bytes == floor_bytes
    counts = [len(x) for x in out_bytes]
    size = sum(len(b) for group in out_bytes for b in group)
    del out_bytes, floor_bytes

    def mem(fn: Any) -> tuple[int, int]:
        gc.collect()
        rss0 = rss_bytes()
        tracemalloc.start()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss1 = rss_bytes()
        del result
        return peak, rss1 - rss0

    def translate_and_serialise() -> Any:
        out = _translate(config)[0]
        return out, _serialise((out.listeners, out.clusters, out.endpoints))[1]

    def floor_and_serialise() -> Any:
        f = build_floor(spec)
        return f, _serialise(f)[1]

    peak_t, rss_t = mem(translate_and_serialise)
    peak_f, rss_f = mem(floor_and_serialise)
    if profile_path is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
        translate_and_serialise()
        profiler.stop()
        profile_path.write_text(profiler.output_text(unicode=False, color=False))
    return {
        "n": n,
        "yaml_s": t_yaml,
        "parse_validate_s": t_parse,
        **{f"{k}_s": v for k, v in best.items()},
        "same_bytes_as_floor": same,
        "resources": counts,
        "bytes": size,
        "tracemalloc_peak": peak_t,
        "rss_growth": rss_t,
        "floor_tracemalloc_peak": peak_f,
        "floor_rss_growth": rss_f,
    }


def main() -> None:
    args = parse_args(__doc__ or "")
    rec = Recorder("scale")
    sizes = [1000, 10_000]
    rounds = 2 if args.quick else 5
    for n in sizes:
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            profile = results_path(f"scale-profile-{n}.txt") if (n == 10_000 and not args.quick) else None
            code = (
                "import json,sys; sys.path.insert(0, sys.argv[1]); import scale; "
                "from pathlib import Path; "
                "r = scale.worker(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[5]) if sys.argv[5] else None); "
                "Path(sys.argv[4]).write_text(json.dumps(r))"
            )
            cmd = [sys.executable, "-c", code, str(BENCH), str(n), str(rounds), tmp.name, str(profile or "")]
            subprocess.run(cmd, check=True, timeout=600)
            r = json.loads(Path(tmp.name).read_text())
        total, floor = r["translate_total_s"], r["floor_total_s"]
        ratio = total / floor
        big = n == 10_000
        lcount, ccount, ecount = r["resources"]
        rec.add(
            f"N={n} translate+serialise",
            total,
            "s",
            target="≤ 1 s" if big else "",
            met=(total <= TARGET_S) if big else None,
            note=f"index {r['index_s']:.3f} + build {r['build_s']:.3f} + serialise {r['serialise_s']:.3f}; "
            f"{lcount} listeners, {ccount} clusters, {ecount} CLAs, {r['bytes'] / 1e6:.1f} MB",
            **r,
        )
        rec.add(
            f"N={n} translate+serialise, GC paused around translate (as the control plane runs it)",
            r["gc_paused_total_s"],
            "s",
            note=f"build {r['gc_paused_build_s']:.3f} with the cyclic GC paused (as the old ControlPlane did); "
            "the row above is the pure translator as a library caller runs it",
        )
        rec.add(
            f"N={n} floor (hand-built protos) build+serialise",
            floor,
            "s",
            note=f"build {r['floor_build_s']:.3f} + serialise {r['floor_serialise_s']:.3f}; "
            f"bytes identical to the translator's: {r['same_bytes_as_floor']}",
        )
        rec.add(
            f"N={n} translator / floor",
            ratio,
            "×",
            target=f"≤ {TARGET_RATIO}×" if big else "",
            met=(ratio <= TARGET_RATIO) if big else None,
        )
        paused = r["gc_paused_total_s"] / r["floor_gc_paused_total_s"]
        rec.add(
            f"N={n} translator / floor, both with the GC paused around their build (the translation worker's way)",
            paused,
            "×",
            target=f"≤ {TARGET_RATIO}×" if big else "",
            met=(paused <= TARGET_RATIO) if big else None,
            note=f"{r['gc_paused_total_s']:.3f} s against the floor's {r['floor_gc_paused_total_s']:.3f} s",
        )
        start = r["yaml_s"] + r["parse_validate_s"] + total
        rec.add(
            f"N={n} control-plane start (YAML + parse/validate + translate+serialise) / floor",
            start / floor,
            "×",
            target=f"≤ {TARGET_START_RATIO}×" if big else "",
            met=(start / floor <= TARGET_START_RATIO) if big else None,
            note=f"{start:.2f} s = YAML {r['yaml_s']:.2f} + parse/validate {r['parse_validate_s']:.2f} + "
            f"translate {total:.2f}, floor {floor:.2f} s, same run",
        )
        rec.add(
            f"N={n} peak memory translate+serialise (tracemalloc)",
            r["tracemalloc_peak"] / 2**20,
            "MiB",
            note=f"RSS growth {r['rss_growth'] / 2**20:.0f} MiB; floor: tracemalloc "
            f"{r['floor_tracemalloc_peak'] / 2**20:.0f} MiB, RSS growth {r['floor_rss_growth'] / 2**20:.0f} MiB",
        )
        rec.add(
            f"N={n} parse+validate",
            r["parse_validate_s"],
            "s",
            note=f"plus YAML loading {r['yaml_s']:.2f} s ({4 * n + 1} documents)",
        )
    rec.write(args.out)


if __name__ == "__main__":
    main()
