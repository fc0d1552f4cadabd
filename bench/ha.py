"""ha: what the distributed store costs on the serving path, and one change across replicas, with real Envoys.

1. apply → Envoy ACK: 100 services behind one real Envoy (SotW); each edit flips one VirtualService between 100/0
   and 0/100 through /api/apply. The same edits with the embedded SQLite store and with a 3-member etcd, in one run:
   p50 / p99 and their ratio (target: etcd within 1.5× of SQLite).
2. One change → all ACKed: ENVOYS Envoys spread over 2 replicas on that etcd (the change goes in through replica 0;
   replica 1 takes it from its etcd watch), and, as the reference, the same Envoys on one SQLite control plane.
   "All ACKed" is each replica's /debug/syncz showing every one of its Envoys on a new version, all types SYNCED.
   Once more with --debounce-ms 10: replica 1 reloads after istiod's 100 ms quiet period, which bounds that figure.
The first edit after a start is reported on its own and left out of p50 / p99: it pays one-off work (a full
translation builds the incremental translator's index) that took 0.3-0.7 s here.
"""

from __future__ import annotations

import os
import time
from typing import Any

# The seeding store client (gRPC) lives in this process, which then forks Envoys and control planes: no fork
# handlers (and none of their log lines) are needed for children that exec at once.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from common import Recorder, deadline, median, parse_args, percentile
from envmesh import BenchMesh
from etcdcluster import EtcdCluster
from synth import vs_yaml

from tcpmesh.runtime.local import ControlPlaneProcess

SERVICES = 100
ENVOYS = 4
RATIO_TARGET = 1.5


def _proxies(replica: ControlPlaneProcess) -> dict[str, tuple[bool, tuple[str, ...]]]:
    """proxy id → (every type SYNCED, the ACKed versions)."""
    out = {}
    for p in replica.status()["proxies"]:
        types = p["types"]
        synced = all(t["state"] in ("SYNCED", "NOT_SENT") for t in types.values())
        out[p["id"]] = (synced, tuple(str(types[k]["acked"]) for k in sorted(types)))
    return out


def _all_proxies(replicas: list[ControlPlaneProcess]) -> dict[str, tuple[bool, tuple[str, ...]]]:
    out: dict[str, tuple[bool, tuple[str, ...]]] = {}
    for r in replicas:
        out.update(_proxies(r))
    return out


def _wait_all_synced(mesh: BenchMesh, count: int, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        seen = _all_proxies(mesh.replicas)
        if len(seen) >= count and all(synced for synced, _ in seen.values()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{count} Envoys not synced within {timeout} s: {_all_proxies(mesh.replicas)}")


def _edits(mesh: BenchMesh, changes: int, seconds: float) -> tuple[float | None, list[float], list[float], int]:
    """Flip VirtualServices through replica 0; per edit, apply → every Envoy on every replica ACKed it.

    Edit 0 is the warm-up: the lists leave it out; the first value returned is its apply → ACK (None: timed out)."""
    spec = mesh.spec
    assert spec is not None
    acked_ms: list[float] = []
    response_ms: list[float] = []
    timed_out = 0
    first: float | None = None
    on_v2: dict[int, bool] = {}
    over = deadline(seconds)
    for k in range(changes + 1):
        if over():
            break
        i = (k * 37) % spec.services
        to_v2 = on_v2.get(i) is not True  # always a real change, even when the edits come round to a service again
        on_v2[i] = to_v2
        before = _all_proxies(mesh.replicas)
        t0 = time.perf_counter()
        code, payload = mesh.apply(vs_yaml(spec, i, 0 if to_v2 else 100, 100 if to_v2 else 0))
        responded = time.perf_counter()
        if code != 200:
            raise RuntimeError(f"apply failed: {code} {payload}")
        end = time.monotonic() + 10
        done = None
        while time.monotonic() < end:
            now = _all_proxies(mesh.replicas)
            if all(now.get(pid, (False, v))[0] and now[pid][1] != v for pid, (_, v) in before.items()):
                done = time.perf_counter()
                break
            time.sleep(0.004)  # a gentle poll: the control planes share 2 cores with the Envoys, etcd and us
        if k == 0:
            first = None if done is None else (done - t0) * 1000
        elif done is None:
            timed_out += 1
        else:
            acked_ms.append((done - t0) * 1000)
            response_ms.append((responded - t0) * 1000)
    return first, acked_ms, response_ms, timed_out


def _mesh(store: str | None, replicas: int, envoys: int, args: tuple[str, ...] = ()) -> BenchMesh:
    mesh = BenchMesh(SERVICES, store=store, extra_args=args)
    try:
        mesh.start()
        for _ in range(replicas - 1):
            mesh.add_replica()
        for e in range(envoys):
            mesh.start_envoy(name=f"gw-{e}", replica=e % replicas)
        _wait_all_synced(mesh, envoys)
    except BaseException:
        mesh.stop()
        raise
    return mesh


def _record(rec: Recorder, label: str, what: str, values: list[float], timed_out: int, **kw: Any) -> float | None:
    if not values:
        rec.add(f"{label}: {what}", None, "ms", note=f"{timed_out} changes timed out")
        return None
    note = f"{len(values)} changes, {SERVICES} services, {timed_out} timed out; max {max(values):.1f} ms"
    rec.add(f"{label}: {what} p50", median(values), "ms", note=note, values=values, **kw)
    rec.add(f"{label}: {what} p99", percentile(values, 99), "ms")
    return median(values)


def _ratio(rec: Recorder, name: str, a: list[float], b: list[float], *, target: bool) -> None:
    if not a or not b:
        rec.add(name, None, "×", note="an arm had no figure")
        return
    for q, (x, y) in (("p50", (median(a), median(b))), ("p99", (percentile(a, 99), percentile(b, 99)))):
        value = x / y
        rec.add(
            f"{name} {q}",
            value,
            "×",
            target=f"≤ {RATIO_TARGET}×" if target else "",
            met=value <= RATIO_TARGET if target else None,
        )


def main() -> None:
    args = parse_args(__doc__ or "")
    rec = Recorder("ha")
    changes = 40 if args.quick else 100
    fan_changes = 15 if args.quick else 40
    arm_seconds = 90 if args.quick else 240
    with EtcdCluster(3) as etcd:
        acks: dict[str, list[float]] = {}
        for label, store in (("SQLite", None), ("etcd 3 members", etcd.url())):
            with _mesh(store, replicas=1, envoys=1) as mesh:
                first, acked, responses, timed_out = _edits(mesh, changes, arm_seconds)
            acks[label] = acked
            rec.add(f"{label}: first edit after start → ACK", first, "ms", note="warm-up, not in p50 / p99")
            _record(rec, label, "apply → Envoy ACK", acked, timed_out)
            _record(rec, label, "/api/apply response", responses, 0)
        _ratio(rec, "etcd / SQLite: apply → ACK", acks["etcd 3 members"], acks["SQLite"], target=True)

        fan: dict[str, list[float]] = {}
        for label, store, replicas, serve_args in (
            (f"{ENVOYS} Envoys on 1 replica (SQLite)", None, 1, ()),
            (f"{ENVOYS} Envoys over 2 replicas (etcd)", etcd.url(), 2, ()),
            (f"{ENVOYS} Envoys over 2 replicas (etcd), --debounce-ms 10", etcd.url(), 2, ("--debounce-ms", "10")),
        ):
            with _mesh(store, replicas, ENVOYS, serve_args) as mesh:
                _, acked, _, timed_out = _edits(mesh, fan_changes, arm_seconds)
            fan[label] = acked
            _record(rec, label, "one change → all ACKed", acked, timed_out)
        one, two, two_quick = fan.values()
        _ratio(rec, "2 replicas (etcd) / 1 replica (SQLite): all ACKed", two, one, target=False)
        _ratio(rec, "2 replicas (etcd, --debounce-ms 10) / 1 replica: all ACKed", two_quick, one, target=False)
    rec.write(args.out)


if __name__ == "__main__":
    main()
