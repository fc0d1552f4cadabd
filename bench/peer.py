"""peer: tcpmesh beside sovereign (the Python Envoy control plane on PyPI, REST-JSON xDS, polling).

Both serve the same N services' clusters, ClusterLoadAssignments and listeners (rendered by tcpmesh; sovereign
returns them from Python templates, its cheapest path). Measured in one run:
  * Envoy start → all listeners and clusters active: REST polling bootstrap (sovereign) vs ADS (tcpmesh);
    control-plane CPU over that time;
  * per request: one full fetch of clusters+endpoints+listeners by a client, K times (sovereign: 3 POSTs of
    DiscoveryRequest JSON without version_info; tcpmesh: one SotW ADS stream, 3 requests and their responses).
sovereign runs from bench/.peer-venv (created here with pip from PyPI if missing).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import BENCH, Recorder, cpu_seconds, median, parse_args
from envmesh import distinct_free_ports
from synth import MeshSpec, mesh_yaml

from tcpmesh.model.config import load_config_text
from tcpmesh.render import message_to_dict
from tcpmesh.runtime.bootstrap import gateway_bootstrap
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts
from tcpmesh.translator import Proxy, translate

PEER_VENV = BENCH / ".peer-venv"
NODE = {"id": "router~127.0.0.1~peer.istio-system~istio-system.svc.cluster.local", "cluster": "peer"}


def _peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, timeout=120)
    probe = subprocess.run([str(python), "-c", "import sovereign"], capture_output=True, timeout=60, check=False)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "sovereign"], check=True, timeout=600)
    return python


def _rest_resources(spec: MeshSpec) -> dict[str, list[dict[str, Any]]]:
    """tcpmesh's output as REST-JSON, with EDS over REST (an ADS config source means nothing to a REST server)."""
    config, problems = load_config_text(mesh_yaml(spec))
    assert not [p for p in problems if p.is_error]
    out = translate(config, Proxy())
    rest_source = {
        "api_config_source": {
            "api_type": "REST",
            "transport_api_version": "V3",
            "cluster_names": ["sovereign"],
            "refresh_delay": "1s",
        },
        "resource_api_version": "V3",
    }
    kinds = {"clusters": out.clusters, "listeners": out.listeners, "endpoints": out.endpoints}
    rendered: dict[str, list[dict[str, Any]]] = {}
    for kind, messages in kinds.items():
        items = []
        for m in messages:
            d = message_to_dict(m)
            if kind == "clusters" and "eds_cluster_config" in d:
                d["eds_cluster_config"]["eds_config"] = rest_source
            d["@type"] = "type.googleapis.com/" + m.DESCRIPTOR.full_name
            items.append(d)
        rendered[kind] = items
    return rendered


def _wait_envoy_loaded(envoy: EnvoyProcess, listeners: int, clusters: int, timeout: float) -> float | None:
    t0 = time.perf_counter()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            stats = envoy.stats(filter="^(listener_manager.total_listeners_active|cluster_manager.active_clusters)$")
        except Exception:
            stats = {}
        if (
            stats.get("listener_manager.total_listeners_active", 0) >= listeners
            and stats.get("cluster_manager.active_clusters", 0) >= clusters
        ):
            return time.perf_counter() - t0
        time.sleep(0.05)
    return None


def _sovereign_fetch(port: int) -> float:
    t0 = time.perf_counter()
    for kind in ("clusters", "endpoints", "listeners"):
        body = json.dumps({"node": NODE, "version_info": "", "resource_names": []}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v3/discovery:{kind}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = resp.read()
            if resp.status != 200 or not data:
                raise RuntimeError(f"sovereign {kind}: HTTP {resp.status}")
    return time.perf_counter() - t0


def _ads_fetch(port: int) -> float:
    import grpc  # type: ignore[import-untyped,unused-ignore]
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    prefix = "type.googleapis.com/envoy.config."
    types = [
        prefix + "cluster.v3.Cluster",
        prefix + "endpoint.v3.ClusterLoadAssignment",
        prefix + "listener.v3.Listener",
    ]
    node = base_pb2.Node(id=NODE["id"], cluster=NODE["cluster"])
    node.metadata.update({"NAMESPACE": "istio-system", "LABELS": {"istio": "ingressgateway"}})
    t0 = time.perf_counter()
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 2**28)]) as ch:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch)
        reqs = [discovery_pb2.DiscoveryRequest(node=node, type_url=t) for t in types]
        got = set()
        call = stub.StreamAggregatedResources(iter(reqs), timeout=30)
        for resp in call:
            got.add(resp.type_url)
            if len(got) == 3:
                call.cancel()
                break
    return time.perf_counter() - t0


def run_tcpmesh(rec: Recorder, spec: MeshSpec, state: Path, requests: int, listeners: int, clusters: int) -> None:
    (state / "config").mkdir()
    (state / "config" / "mesh.yaml").write_text(mesh_yaml(spec))
    cp = ControlPlaneProcess(state / "config", state, MeshPorts.free())
    cp.start(timeout=120)
    try:
        assert cp.process is not None
        pid = cp.process.pid
        cpu0 = cpu_seconds(pid)
        envoy = EnvoyProcess(gateway_bootstrap(ads_port=cp.ports.ads, admin_port=0), work_dir=state / "envoy-ads")
        envoy.start()
        try:
            loaded = _wait_envoy_loaded(envoy, listeners, clusters, 120)
        finally:
            envoy.stop()
            envoy.close()
        cpu1 = cpu_seconds(pid)
        rec.add(
            f"tcpmesh (ADS): Envoy start → {listeners} listeners, {clusters} clusters active",
            loaded,
            "s",
            note=f"control-plane CPU {cpu1 - cpu0:.2f} s",
        )
        times = [_ads_fetch(cp.ports.ads) for _ in range(requests)]
        cpu2 = cpu_seconds(pid)
        rec.add(
            "tcpmesh (ADS): one full fetch (CDS+EDS+LDS on one stream), median",
            median(times) * 1000,
            "ms",
            note=f"{requests} fetches; control-plane CPU per fetch {(cpu2 - cpu1) / requests * 1000:.1f} ms",
        )
    finally:
        cp.stop()


def run_sovereign(rec: Recorder, spec: MeshSpec, state: Path, requests: int, listeners: int, clusters: int) -> None:
    try:
        python = _peer_python()
    except (subprocess.SubprocessError, OSError) as exc:
        rec.add("sovereign", None, "", note=f"could not be installed: {exc}")
        return
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('sovereign'))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    resources = state / "peer-resources.json"
    resources.write_text(json.dumps(_rest_resources(spec)))
    (port,) = distinct_free_ports(1)
    config = state / "sovereign.yaml"
    config.write_text(
        "templates:\n  default:\n"
        + "".join(
            f"    - type: {k}\n      spec: {{protocol: python, path: {BENCH / 'peer_templates' / (k + '.py')}}}\n"
            for k in ("clusters", "endpoints", "listeners")
        )
        + "template_context:\n  context: {}\n"
    )
    env = {
        **os.environ,
        "SOVEREIGN_CONFIG": f"file://{config}",
        "SOVEREIGN_HOST": "127.0.0.1",
        "SOVEREIGN_PORT": str(port),
        "SOVEREIGN_WORKERS": "1",
        "SOVEREIGN_NODE_MATCHING_ENABLED": "False",
        "PEER_RESOURCES": str(resources),
        "PYTHONPATH": str(BENCH),
    }
    log = (state / "sovereign.log").open("wb")
    proc = subprocess.Popen(
        [str(python), "-m", "sovereign.server"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        end = time.monotonic() + 60
        ready = False
        while time.monotonic() < end and proc.poll() is None:
            try:
                _sovereign_fetch(port)
                ready = True
                break
            except Exception:
                time.sleep(0.2)
        if not ready:
            tail = (state / "sovereign.log").read_text(errors="replace")
            rec.add(f"sovereign {version}", None, "", note="did not serve discovery: " + _last_error(tail))
            return
        import psutil

        procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]

        def cpu() -> float:
            return sum(float(p.cpu_times().user + p.cpu_times().system) for p in procs if p.is_running())

        cpu0 = cpu()
        rest = {
            "api_config_source": {
                "api_type": "REST",
                "transport_api_version": "V3",
                "cluster_names": ["sovereign"],
                "refresh_delay": "1s",
                "request_timeout": "10s",
            },
            "resource_api_version": "V3",
        }
        bootstrap = gateway_bootstrap(admin_port=0)
        bootstrap["node"]["cluster"] = "peer"
        bootstrap["dynamic_resources"] = {"cds_config": rest, "lds_config": rest}
        bootstrap["static_resources"] = {
            "clusters": [
                {
                    "name": "sovereign",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "sovereign",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ]
        }
        envoy = EnvoyProcess(bootstrap, work_dir=state / "envoy-rest")
        envoy.start()
        try:
            loaded = _wait_envoy_loaded(envoy, listeners, clusters, 120)
        finally:
            envoy.stop()
            envoy.close()
        cpu1 = cpu()
        rec.add(
            f"sovereign {version} (REST polling, 1 s): Envoy start → {listeners} listeners, {clusters} clusters active",
            loaded,
            "s",
            note=f"sovereign CPU {cpu1 - cpu0:.2f} s (incl. its polling answers)",
        )
        times = [_sovereign_fetch(port) for _ in range(requests)]
        cpu2 = cpu()
        rec.add(
            f"sovereign {version}: one full fetch (3 POSTs: clusters, endpoints, listeners), median",
            median(times) * 1000,
            "ms",
            note=f"{requests} fetches; sovereign CPU per fetch {(cpu2 - cpu1) / requests * 1000:.1f} ms "
            f"(its discovery cache serves repeats)",
        )
    finally:
        import signal

        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _last_error(log: str) -> str:
    """The last exception line of sovereign's log (its tracebacks print the whole rendered context)."""
    errors = [line.strip() for line in log.splitlines() if re.match(r"\s*\|?\s*[A-Za-z_.]*(Error|Exception)\b", line)]
    text = errors[-1] if errors else log[-300:]
    return text[:400]


def main() -> None:
    args = parse_args(__doc__ or "")
    rec = Recorder("peer")
    n = 100 if args.quick else 1000
    requests = 5 if args.quick else 20
    with tempfile.TemporaryDirectory(prefix="tcpmesh-peer-") as tmp:
        state = Path(tmp)
        ports = distinct_free_ports(n)
        spec = MeshSpec(n, ports=ports, v1_address="127.0.0.1", v2_address="127.0.0.1")
        listeners, clusters = n, 3 * n + 1
        (state / "tcpmesh").mkdir()
        run_tcpmesh(rec, spec, state / "tcpmesh", requests, listeners, clusters)
        (state / "sovereign").mkdir()
        run_sovereign(rec, spec, state / "sovereign", requests, listeners, clusters + 1)
    rec.write(args.out)


if __name__ == "__main__":
    main()
