"""`tcpmesh dump -o json` loads back into Envoy's protobuf messages, and a real Envoy accepts the config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import json_format

from tcpmesh.cli import main
from tcpmesh.model.config import load_config
from tcpmesh.render import static_bootstrap
from tcpmesh.runtime.envoy import validate_config
from tcpmesh.translator import Proxy, translate

from .test_golden import CASES

MESSAGES = {
    "listeners": listener_pb2.Listener,
    "clusters": cluster_pb2.Cluster,
    "endpoints": endpoint_pb2.ClusterLoadAssignment,
    "extension_configs": extension_pb2.TypedExtensionConfig,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dump_json_parses_into_xds_messages(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "dump",
                "-o",
                "json",
                *map(str, CASES[case]),
                "-n",
                "istio-io-tcp-traffic-shifting" if "seed003" in case else "default",
            ]
        )
        == 0
    )
    dumped = json.loads(capsys.readouterr().out)
    assert set(dumped) == set(MESSAGES)
    for kind, message_type in MESSAGES.items():
        for item in dumped[kind]:
            message = json_format.ParseDict(item, message_type())
            # Printing it again gives back exactly what was dumped: nothing was lost or renamed.
            again = json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True))
            assert again == item


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(CASES))
def test_real_envoy_accepts_generated_config(case: str, tmp_path: Path) -> None:
    namespace = "istio-io-tcp-traffic-shifting" if "seed003" in case else "default"
    config, problems = load_config(CASES[case], namespace)
    assert not [p for p in problems if p.is_error]
    ok, output = validate_config(static_bootstrap(translate(config, Proxy())))
    assert ok, output[-3000:]
