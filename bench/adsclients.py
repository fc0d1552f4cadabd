"""Many ADS streams that behave like Envoy (subscribe CDS + LDS, then EDS for the clusters; ACK every response),
in one process: ``python bench/adsclients.py ADDRESS STREAMS {delta|sotw} CHANNELS SERVICES``.

Protocol with the parent on stdin/stdout (one JSON object per line):
  → {"synced": seconds, "streams": n}      once every stream has received and ACKed CDS, EDS and LDS
  ← MARK                                   the parent is about to change the config
  → {"lds_after_mark": [wall times], "missing": k}   once every stream got a new LDS response (or 60 s passed)
  ← STOP
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

PREFIX = "type.googleapis.com/"
CDS = PREFIX + "envoy.config.cluster.v3.Cluster"
EDS = PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = PREFIX + "envoy.config.listener.v3.Listener"
SYNC_LIMIT_S = 150.0
CHANGE_LIMIT_S = 60.0


def _node(k: int) -> Any:
    node = base_pb2.Node(id=f"router~127.0.0.1~bench-{k}.istio-system~istio-system.svc.cluster.local", cluster="bench")
    node.metadata.update(
        {"NAMESPACE": "istio-system", "LABELS": {"app": "istio-ingressgateway", "istio": "ingressgateway"}}
    )
    return node


class Stream:
    def __init__(self, k: int, delta: bool, eds_names: list[str]) -> None:
        self.k = k
        self.delta = delta
        self.eds_names = eds_names
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.seen: set[str] = set()
        self.synced = asyncio.Event()
        self.mark: float | None = None
        self.lds_after_mark: float | None = None
        self.got_lds = asyncio.Event()
        self.error = ""

    async def requests(self) -> Any:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    def _req(self, type_url: str, names: list[str] | None = None, **kw: Any) -> Any:
        if self.delta:
            return discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=names or [], **kw)
        return discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=names or [], **kw)

    async def run(self, stub: Any) -> None:
        try:
            await self._run(stub)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported to the parent: a stream that failed never syncs
            self.error = f"{type(exc).__name__}: {str(exc)[:200]}"

    async def _run(self, stub: Any) -> None:
        node = _node(self.k)
        self.queue.put_nowait(self._req(CDS, node=node))
        self.queue.put_nowait(self._req(LDS))
        call = (stub.DeltaAggregatedResources if self.delta else stub.StreamAggregatedResources)(self.requests())
        eds_sent = False
        async for resp in call:
            t = resp.type_url
            if self.delta:
                self.queue.put_nowait(discovery_pb2.DeltaDiscoveryRequest(type_url=t, response_nonce=resp.nonce))
            else:
                names = self.eds_names if t == EDS else []
                self.queue.put_nowait(
                    discovery_pb2.DiscoveryRequest(
                        type_url=t, version_info=resp.version_info, response_nonce=resp.nonce, resource_names=names
                    )
                )
            if t == CDS and not eds_sent:
                eds_sent = True
                names = [r.name for r in resp.resources] if self.delta else self.eds_names
                names = [n for n in names if n.startswith("outbound|")]
                self.queue.put_nowait(self._req(EDS, names))
            self.seen.add(t)
            if t == LDS and self.mark is not None and self.lds_after_mark is None:
                self.lds_after_mark = time.time()
                self.got_lds.set()
            if {CDS, EDS, LDS} <= self.seen:
                self.synced.set()


async def main() -> None:
    address, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    channels_n = int(sys.argv[4]) if len(sys.argv) > 4 else max(1, count // 50)
    services = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    eds_names = [
        f"outbound|9000|{s}|svc-{i}.default.svc.cluster.local" for i in range(services) for s in ("", "v1", "v2")
    ]
    options = [("grpc.max_receive_message_length", 256 * 2**20)]
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(channels_n)]
    stubs = [ads_pb2_grpc.AggregatedDiscoveryServiceStub(c) for c in channels]
    streams = [Stream(k, mode == "delta", eds_names) for k in range(count)]
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(s.run(stubs[s.k % channels_n])) for s in streams]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.synced.wait() for s in streams)), SYNC_LIMIT_S)
        print(json.dumps({"synced": time.perf_counter() - t0, "streams": count}), flush=True)
    except TimeoutError:
        done = sum(s.synced.is_set() for s in streams)
        errors = sorted({s.error for s in streams if s.error})
        print(json.dumps({"synced": None, "streams": done, "errors": errors[:5]}), flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() == "MARK":
        now = time.time()
        for s in streams:
            s.mark = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.got_lds.wait() for s in streams)), CHANGE_LIMIT_S)
        got = [s.lds_after_mark for s in streams if s.lds_after_mark is not None]
        print(json.dumps({"lds_after_mark": got, "missing": count - len(got)}), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
    for s in streams:
        s.queue.put_nowait(None)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in channels:
        await c.close()


if __name__ == "__main__":
    asyncio.run(main())
