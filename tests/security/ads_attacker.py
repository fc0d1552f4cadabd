"""An abusive ADS client, run as its own process: streams that each send requests with ever new garbage type URLs
as fast as they can, reconnecting (after RECONNECT_DELAY) when the server ends them. Prints a JSON summary (status
codes seen) at the end, after an "attacking" line once the server has refused its first stream.

    python -m tests.security.ads_attacker PORT SECONDS
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from tcpmesh.xds.types import Node

RECONNECT_DELAY = 0.05
NODE = Node(id="sidecar~127.0.0.9~attacker.default~default.svc.cluster.local", cluster="evil")


async def attack(port: int, seconds: float) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    details: dict[str, str] = {}
    counter = itertools.count()
    sent = 0
    end = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        while time.monotonic() < end:
            half_closed = False

            async def garbage() -> AsyncIterator[Any]:
                nonlocal sent, half_closed
                first = True
                while time.monotonic() < end:
                    req = discovery_pb2.DiscoveryRequest(type_url=f"type.googleapis.com/garbage.T{next(counter)}")
                    if first:
                        req.node.CopyFrom(NODE.to_proto())
                        first = False
                    sent += 1
                    yield req
                    if sent % 50 == 0:
                        await asyncio.sleep(0)
                half_closed = True

            call = stub.StreamAggregatedResources(garbage())
            try:
                async for _ in call:
                    pass
                # A stream whose requests ran out at the deadline before the limit was reached may end OK: the
                # client closed it, not the server, so it is not counted against the server.
                codes["HALF_CLOSED" if half_closed else "OK"] += 1
            except grpc.aio.AioRpcError as exc:
                if not codes:
                    print("attacking", flush=True)
                codes[exc.code().name] += 1
                details[exc.code().name] = exc.details() or ""
            # Reconnect like a client that backs off a little: this is an abusive stream, not a connection flood
            # (per-peer connection limits are not what these per-stream limits are for).
            await asyncio.sleep(RECONNECT_DELAY)
    return {"sent": sent, "codes": dict(codes), "details": details}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(attack(int(sys.argv[1]), float(sys.argv[2])))), flush=True)
