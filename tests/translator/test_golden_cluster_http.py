"""DestinationRule HTTP settings on clusters (tests/testdata/inputs/http-destination-rule.yaml) compared to a
golden (UPDATE_GOLDEN=1 regenerates), accepted by a real Envoy, and the same in both serving modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpmesh.commands.offline import proxy_from_args
from tcpmesh.model.config import load_config
from tcpmesh.render import static_bootstrap
from tcpmesh.runtime.envoy import validate_config
from tcpmesh.translator import TranslateOptions, translate

from .golden import assert_matches_golden
from .test_golden import render_case

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ROOT / "tests" / "testdata" / "inputs"
CASES = {
    "http-destination-rule": [INPUTS / "http-destination-rule.yaml"],
    "http-httpbin-circuit-breaking": [ROOT / "samples" / "httpbin-circuit-breaking"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cluster_http_settings_match_golden(case: str) -> None:
    assert_matches_golden(case, render_case(CASES[case], TranslateOptions()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_inline_weights_mode_builds_the_same_clusters(case: str) -> None:
    assert render_case(CASES[case], TranslateOptions()) == render_case(
        CASES[case], TranslateOptions(inline_weights=True)
    )


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(CASES))
def test_real_envoy_accepts_cluster_http_settings(case: str) -> None:
    """``envoy --mode validate``: every HttpProtocolOptions form (h1, h2, downstream protocol) is one Envoy takes."""
    config, problems = load_config(CASES[case], "default")
    assert not [p for p in problems if p.is_error]
    ok, output = validate_config(static_bootstrap(translate(config, proxy_from_args("gateway", None, None))))
    assert ok, output[-3000:]
