"""A real Envoy against XdsServer (SotW and delta): it ACKs every type, warms its EDS cluster, proxies TCP,
and takes a cluster change (which needs the EDS re-send to leave warming) without a NACK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from tcpmesh.runtime.ports import free_ports
from tcpmesh.xds.status import AckEvent, SyncState
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from tests.xds.ads_testkit import GeneratingServer, World, cla, cluster, eventually, listener, node, run

pytestmark = pytest.mark.envoy

NODE = node("router~127.0.0.1~gw.test~test.svc.cluster.local", app="gw")


def envoy_binary() -> str:
    try:
        from tcpmesh.runtime.binary import find_envoy_binary

        return str(find_envoy_binary())
    except Exception:
        found = shutil.which("envoy")
        if found is None:
            pytest.skip("no Envoy binary")
        return found


def bootstrap(ads_port: int, admin_port: int, api_type: str) -> str:
    return json.dumps(
        {
            "node": {"id": NODE.id, "cluster": NODE.cluster, "metadata": dict(NODE.metadata)},
            "dynamic_resources": {
                "ads_config": {
                    "api_type": api_type,
                    "transport_api_version": "V3",
                    "set_node_on_first_message_only": True,
                    "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}],
                },
                "cds_config": {"ads": {}, "resource_api_version": "V3"},
                "lds_config": {"ads": {}, "resource_api_version": "V3"},
            },
            "static_resources": {
                "clusters": [
                    {
                        "name": "xds",
                        "type": "STATIC",
                        "connect_timeout": "1s",
                        "typed_extension_protocol_options": {
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                                "explicit_http_config": {"http2_protocol_options": {}},
                            }
                        },
                        "load_assignment": {
                            "cluster_name": "xds",
                            "endpoints": [
                                {
                                    "lb_endpoints": [
                                        {
                                            "endpoint": {
                                                "address": {
                                                    "socket_address": {"address": "127.0.0.1", "port_value": ads_port}
                                                }
                                            }
                                        }
                                    ]
                                }
                            ],
                        },
                    }
                ]
            },
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        }
    )


async def echo_server() -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(4096):
                writer.write(b"echo " + data)
                await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


async def exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 2)
    finally:
        writer.close()


async def admin_stat(admin_port: int, name: str) -> int | None:
    def get() -> int | None:
        url = f"http://127.0.0.1:{admin_port}/stats?filter=^{name}$"
        with urllib.request.urlopen(url, timeout=2) as r:
            for line in r.read().decode().splitlines():
                key, _, value = line.partition(": ")
                if key == name:
                    return int(value)
        return None

    try:
        return await asyncio.to_thread(get)
    except OSError:
        return None


@pytest.mark.parametrize("api_type", ["GRPC", "DELTA_GRPC"])
def test_real_envoy_syncs_proxies_and_warms_after_cluster_change(api_type: str, tmp_path: Path) -> None:
    events: list[AckEvent] = []

    async def body() -> None:
        echo, echo_port = await echo_server()
        listen_port, admin_port = free_ports(2)
        world = World()
        world.set(
            "gw",
            clusters=[cluster("echo")],
            endpoints=[cla("echo", "127.0.0.1", port=echo_port)],
            listeners=[listener("tcp", listen_port, "echo")],
        )
        server = GeneratingServer(world.generate, on_ack=events.append)
        ads_port = await server.start()
        config = tmp_path / "envoy.json"
        config.write_text(bootstrap(ads_port, admin_port, api_type))
        proc = await asyncio.create_subprocess_exec(
            envoy_binary(),
            "-c",
            str(config),
            "--use-dynamic-base-id",
            "--drain-time-s",
            "1",
            "-l",
            "warning",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=(tmp_path / "envoy.log").open("wb"),
        )

        def synced() -> bool:
            status = server.status()
            return bool(status) and all(
                status[0].types.get(t) is not None and status[0].types[t].state is SyncState.SYNCED
                for t in (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE)
            )

        try:
            await eventually(synced, timeout=20)
            assert await exchange(listen_port, b"hi\n") == b"echo hi\n"
            # Change only the cluster: Envoy keeps it warming until the (unchanged) endpoints are re-sent.
            world.apps["gw"][CLUSTER_TYPE] = [cluster("echo", timeout_s=3)]
            server.config_changed()
            version = server.snapshot(NODE.id)[CLUSTER_TYPE].version  # type: ignore[index]
            await eventually(lambda: synced() and server.status()[0].types[CLUSTER_TYPE].acked_version == version)

            async def warm() -> bool:
                return await admin_stat(admin_port, "cluster_manager.warming_clusters") == 0

            deadline = asyncio.get_running_loop().time() + 5
            while not await warm():
                assert asyncio.get_running_loop().time() < deadline, "cluster stuck warming"
                await asyncio.sleep(0.05)
            assert await admin_stat(admin_port, "cluster_manager.cds.update_rejected") == 0
            assert await exchange(listen_port, b"again\n") == b"echo again\n"
            assert all(e.error is None for e in events), [e.error for e in events if e.error]
        finally:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await server.stop(0)
            echo.close()

    run(body(), timeout=60)
