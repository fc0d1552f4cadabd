"""A gateway with a dozen TCP ports, end to end over SotW and delta: Envoy grows its ECDS subscription one filter
config per listener, and the server answers each growth with the configs it gained (SotW too: ECDS is not a
full-state type), so every listener must still warm, answer, and take a weight edit of just its config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpmesh.runtime.ports import free_ports

from .conftest import SAMPLES, Mesh
from .traffic import exchange

pytestmark = pytest.mark.envoy

PORTS = 12  # above the size where a subset is derived from the previous one (partial SotW answers)


def gateway_yaml(ports: tuple[int, ...]) -> str:
    servers = "".join(
        f"  - port: {{number: {p}, name: tcp-{i}, protocol: TCP}}\n    hosts: ['*']\n" for i, p in enumerate(ports)
    )
    gateway = f"""apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {{name: many}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
{servers}---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {{name: tcp-echo}}
spec:
  host: tcp-echo
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"""
    return gateway + "".join("---\n" + route_yaml(i, p, "v1") for i, p in enumerate(ports))


def route_yaml(i: int, port: int, subset: str) -> str:
    return f"""apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: route-{i}}}
spec:
  hosts: ['*']
  gateways: [many]
  tcp:
  - match: [{{port: {port}}}]
    route:
    - destination: {{host: tcp-echo, port: {{number: 9000}}, subset: {subset}}}
"""


def test_every_listener_warms_and_an_edit_reaches_its_config_only(mesh: Mesh, tmp_path: Path) -> None:
    ports = tuple(free_ports(PORTS))
    config = tmp_path / "input"
    config.mkdir()
    (config / "many.yaml").write_text(gateway_yaml(ports))
    (config / "services.yaml").write_text((SAMPLES / "tcp-echo" / "tcp-echo-services.yaml").read_text())
    mesh.start([config / "many.yaml", config / "services.yaml"])
    assert [exchange(p).split()[0] for p in ports] == ["one"] * PORTS
    (proxy,) = mesh.control_plane.status()["proxies"]
    ecds = proxy["types"]["TypedExtensionConfig"]
    assert ecds["state"] == "SYNCED"
    if mesh.ads_api_type == "GRPC":  # SotW counts what Envoy holds, however the answers were cut (delta: the last)
        assert ecds["resources"] == 2 * PORTS  # per listener its tcp_proxy and its drain filter
    edited = tmp_path / "edit.yaml"
    edited.write_text(route_yaml(5, ports[5], "v2"))
    result = mesh.apply(edited)
    assert result["code"] == 200, result
    mesh.wait_synced(generation=2)
    assert [exchange(p).split()[0] for p in ports] == ["one"] * 5 + ["two"] + ["one"] * (PORTS - 6)
