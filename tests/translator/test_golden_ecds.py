"""Goldens of the default, connection-preserving mode: each tcp_proxy served by ECDS, listeners name it.

Regenerate after an intended change with: UPDATE_GOLDEN=1 .venv/bin/pytest tests/translator/test_golden_ecds.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpmesh.render import static_bootstrap
from tcpmesh.runtime.envoy import validate_config
from tcpmesh.translator import TranslateOptions

from .golden import assert_matches_golden
from .test_golden import CASES, INPUTS, render_case
from .test_golden_mesh import CASES as MESH_CASES
from .test_golden_mesh import render_mesh_case, translate_case

ECDS = TranslateOptions()
GATEWAY_CASES = {
    "ecds-tcp-echo-80-20": CASES["tcp-echo-80-20"],
    "ecds-two-gateways": CASES["two-gateways"],
    "ecds-l4-tls-passthrough": [INPUTS / "l4-tls-passthrough.yaml"],
    "ecds-l4-tls-terminate": [INPUTS / "l4-tls-terminate.yaml"],
    "ecds-sds-credentials": [INPUTS / "sds-credentials.yaml"],
}
SIDECAR_CASES = {"ecds-mesh-20-80": MESH_CASES["mesh-20-80"], "ecds-mesh-tls": MESH_CASES["mesh-tls"]}


@pytest.mark.parametrize("case", sorted(GATEWAY_CASES))
def test_gateway_ecds_config_matches_golden(case: str) -> None:
    assert_matches_golden(case, render_case(GATEWAY_CASES[case], ECDS))


@pytest.mark.parametrize("case", sorted(SIDECAR_CASES))
def test_sidecar_ecds_config_matches_golden(case: str) -> None:
    assert_matches_golden(case, render_mesh_case(SIDECAR_CASES[case], ECDS))


def test_ecds_listener_bytes_do_not_depend_on_weights() -> None:
    """The point of the mode: all-v1, 80/20 and 20/80 give byte-identical listeners; only the tcp_proxy differs."""
    texts = {name: render_case(CASES[name], ECDS) for name in ("tcp-echo-all-v1", "tcp-echo-80-20", "tcp-echo-20-80")}
    listeners = {name: text.split("clusters:")[0] for name, text in texts.items()}
    assert len(set(listeners.values())) == 1, listeners
    assert len({text.split("extension_configs:")[1] for text in texts.values()}) == 3


@pytest.mark.envoy
@pytest.mark.parametrize("name", sorted(SIDECAR_CASES))
def test_real_envoy_accepts_inlined_ecds_config(name: str, tmp_path: Path) -> None:
    """static_bootstrap puts the discovered configs back inline: the same tcp_proxies Envoy would fetch."""
    ok, output = validate_config(static_bootstrap(translate_case(SIDECAR_CASES[name], ECDS)))
    assert ok, output[-3000:]
