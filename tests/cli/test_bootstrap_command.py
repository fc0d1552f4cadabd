"""`tcpmesh bootstrap` as compose/docker-compose.ha.yml runs it: several replicas by name, admin on all interfaces;
Envoy itself accepts the result."""

from __future__ import annotations

import pytest
import yaml

from tcpmesh.cli import main
from tcpmesh.runtime.envoy import validate_config

pytestmark = pytest.mark.envoy


def test_bootstrap_for_two_replicas_by_name_with_a_published_admin_port(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bootstrap", "--control-plane", "control-plane-a:15010,control-plane-b:15010", "--admin-host", "0.0.0.0"]
    assert main(args) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["admin"]["address"] == {"socket_address": {"address": "0.0.0.0", "port_value": 15000}}
    (ads,) = config["static_resources"]["clusters"]
    assert ads["type"] == "STRICT_DNS"  # host names: Docker's DNS, followed when a replica's address changes
    endpoints = ads["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"] for e in endpoints] == [
        {"address": "control-plane-a", "port_value": 15010},
        {"address": "control-plane-b", "port_value": 15010},
    ]
    ok, output = validate_config(config)
    assert ok, output


def test_the_admin_address_defaults_to_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bootstrap"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_all_stats_leaves_out_the_stats_matcher_that_the_default_has(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bootstrap"]) == 0
    assert "stats_config" in yaml.safe_load(capsys.readouterr().out)
    assert main(["bootstrap", "--all-stats"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert "stats_config" not in config
    ok, output = validate_config(config)
    assert ok, output
