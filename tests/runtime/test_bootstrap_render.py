"""Bootstraps are Istio-shaped, use no deprecated fields, and envoy/*.yaml mirror render_bootstrap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tcpmesh.runtime.bootstrap import (
    ADS_CLUSTER,
    gateway_bootstrap,
    istio_node_id,
    render_bootstrap,
)
from tcpmesh.runtime.envoy import validate_config

ENVOY_DIR = Path(__file__).resolve().parents[2] / "envoy"
REFERENCE_FILES = {"bootstrap-gateway.yaml": "GRPC", "bootstrap-gateway-delta.yaml": "DELTA_GRPC"}


def sidecar() -> dict[str, Any]:
    return render_bootstrap(
        node_id=istio_node_id("sidecar", "127.0.1.5", "sleep-7f9", "default"),
        node_cluster="sleep.default",
        labels={"app": "sleep", "version": "v1"},
        namespace="default",
        ads_host="127.0.0.1",
        ads_port=18010,
        admin_port=19000,
        ads_api_type="DELTA_GRPC",
    )


def test_node_id_follows_istio() -> None:
    assert istio_node_id("router", "127.0.0.1", "gw", "istio-system") == (
        "router~127.0.0.1~gw.istio-system~istio-system.svc.cluster.local"
    )
    assert istio_node_id("sidecar", "10.0.0.1", "p", "ns").startswith("sidecar~10.0.0.1~p.ns~")


def test_node_carries_identity_labels_and_metadata() -> None:
    node = sidecar()["node"]
    assert node["id"] == "sidecar~127.0.1.5~sleep-7f9.default~default.svc.cluster.local"
    assert node["cluster"] == "sleep.default"
    meta = node["metadata"]
    assert meta["LABELS"] == {"app": "sleep", "version": "v1"}
    assert meta["NAMESPACE"] == "default"
    assert meta["CLUSTER_ID"] == "Kubernetes"
    assert meta["NAME"] == "sleep-7f9"
    assert meta["INSTANCE_IPS"] == "127.0.1.5"
    assert meta["ISTIO_VERSION"]


def test_extra_metadata_wins() -> None:
    doc = render_bootstrap(
        node_id="n", node_cluster="c", labels={}, namespace="ns", metadata={"CLUSTER_ID": "edge", "X": 1}
    )
    assert doc["node"]["metadata"]["CLUSTER_ID"] == "edge"
    assert doc["node"]["metadata"]["X"] == 1


def test_everything_dynamic_comes_over_ads() -> None:
    dyn = sidecar()["dynamic_resources"]
    ads = dyn["ads_config"]
    assert ads["api_type"] == "DELTA_GRPC"
    assert ads["transport_api_version"] == "V3"
    assert ads["set_node_on_first_message_only"] is True
    assert ads["grpc_services"][0]["envoy_grpc"]["cluster_name"] == ADS_CLUSTER
    for key in ("cds_config", "lds_config"):
        assert dyn[key] == {"ads": {}, "resource_api_version": "V3"}


def test_ads_cluster_is_static_http2_via_typed_options() -> None:
    (cluster,) = sidecar()["static_resources"]["clusters"]
    assert cluster["name"] == ADS_CLUSTER
    assert cluster["type"] == "STATIC"
    assert "http2_protocol_options" not in cluster  # deprecated cluster-level field
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address == {"socket_address": {"address": "127.0.0.1", "port_value": 18010}}


def test_admin_is_on_loopback() -> None:
    assert sidecar()["admin"] == {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 19000}}}


@pytest.mark.parametrize(("name", "api_type"), REFERENCE_FILES.items())
def test_reference_yaml_mirrors_render_bootstrap(name: str, api_type: str) -> None:
    on_disk = yaml.safe_load((ENVOY_DIR / name).read_text())
    assert on_disk == gateway_bootstrap(ads_api_type=api_type)


def test_envoy_dir_is_yaml_only() -> None:
    files = [p.name for p in ENVOY_DIR.iterdir()]
    assert "__init__.py" not in files
    assert all(name.endswith((".yaml", ".yml")) for name in files), files


@pytest.mark.envoy
@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_real_envoy_accepts_reference_yaml(name: str) -> None:
    ok, output = validate_config(ENVOY_DIR / name)
    assert ok, output


@pytest.mark.envoy
def test_real_envoy_accepts_rendered_sidecar_bootstrap() -> None:
    ok, output = validate_config(sidecar())
    assert ok, output
