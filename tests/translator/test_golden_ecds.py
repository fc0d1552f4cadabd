"""Goldens of the default, connection-preserving mode: each tcp_proxy served by ECDS, listeners name it.

Regenerate after an intended change with: UPDATE_GOLDEN=1 .venv/bin/pytest tests/translator/test_golden_ecds.py
"""

from __future__ import annotations

import re
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
    "ecds-drain": [CASES["tcp-echo-all-v1"][0], INPUTS / "drain-v1.yaml"],
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


def _sections(text: str) -> dict[str, str]:
    """The golden's top-level keys (listeners, clusters, endpoints, extension_configs) and their text."""
    parts = re.split(r"^([a-z_]+):$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_a_drain_is_endpoint_metadata_of_the_drained_subset_only() -> None:
    """A drain changes the routed port of v1 (9000, not 9001) in EDS and nothing else: no listener, cluster, filter."""
    plain = _sections(render_case(CASES["tcp-echo-20-80"], ECDS))
    drained = _sections(render_case(GATEWAY_CASES["ecds-drain"], ECDS))
    for kind in ("listeners", "clusters", "extension_configs"):
        assert plain[kind] == drained[kind], kind
    for assignment in drained["endpoints"].split("- cluster_name: ")[1:]:
        assert ("tcpmesh.drain" in assignment) == ("|9000|v1|" in assignment.splitlines()[0]), assignment
        assert "tcpmesh.drain" not in assignment or "fraction: 0.35" in assignment


def test_inline_weights_have_no_drain_filter_nor_drain_metadata() -> None:
    """istiod's exact form: a drain annotation changes nothing (tcpmesh drain refuses that mode)."""
    inline = TranslateOptions(inline_weights=True)
    assert render_case(GATEWAY_CASES["ecds-drain"], inline) == render_case(CASES["tcp-echo-20-80"], inline)
