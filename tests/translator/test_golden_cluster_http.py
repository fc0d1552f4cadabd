"""DestinationRule HTTP settings on clusters (tests/testdata/inputs/http-destination-rule.yaml) compared to a
golden (UPDATE_GOLDEN=1 regenerates), accepted by a real Envoy, the same in both serving modes, and rebuilt by
the incremental translator exactly as a full translation builds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpmesh.commands.offline import proxy_from_args
from tcpmesh.model.config import load_config, load_config_text
from tcpmesh.render import dump_yaml, resources_to_dict, static_bootstrap
from tcpmesh.runtime.envoy import validate_config
from tcpmesh.translator import Proxy, TranslateOptions, translate
from tcpmesh.translator.incremental import IncrementalTranslator

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


TCP_ECHO = ROOT / "samples" / "tcp-echo"
RULE_EDITS = [
    "",
    "trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}}}",
    "trafficPolicy: {connectionPool: {tcp: {idleTimeout: 3s}, http: {idleTimeout: 2s, h2UpgradePolicy: UPGRADE}}}",
    "trafficPolicy: {connectionPool: {http: {useClientProtocol: true}}, retryBudget: {percent: 10}}",
    "trafficPolicy: {outlierDetection: {consecutive5xxErrors: 2, outlierDetectionHttpErrorCodes: [500, 502]}}",
    "trafficPolicy: {portLevelSettings: [{port: {number: 9000}, connectionPool: {http: {maxRetries: 4}}}]}",
    "",
]


def test_incremental_translator_follows_http_setting_edits() -> None:
    """Each edit of the tcp-echo rule's HTTP settings: the incremental result equals a full translation."""
    base = "\n---\n".join(p.read_text() for p in sorted(TCP_ECHO.glob("*.yaml")))
    proxy = Proxy.gateway()
    inc = IncrementalTranslator(proxy)
    seen = set()
    for edit in RULE_EDITS:
        text = base.replace("  host: tcp-echo\n  subsets:", f"  host: tcp-echo\n  {edit}\n  subsets:")
        config, problems = load_config_text(text, "tcp-echo.yaml")
        assert not [p for p in problems if p.is_error], problems
        full = dump_yaml(resources_to_dict(translate(config, proxy)))
        assert dump_yaml(resources_to_dict(inc.update(config))) == full, edit
        seen.add(full)
    assert len(seen) == len(RULE_EDITS) - 1  # every edit changed the output; the last one undid them all
