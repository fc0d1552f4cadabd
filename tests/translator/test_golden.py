"""Exact generated config compared to readable YAML goldens.

Regenerate after an intended change with: UPDATE_GOLDEN=1 .venv/bin/pytest tests/translator/test_golden.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpmesh.model.config import load_config
from tcpmesh.render import dump_yaml, resources_to_dict
from tcpmesh.translator import Proxy, TranslateOptions, translate
from tests.references import assert_canonical, walked

from .golden import assert_matches_golden

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ROOT / "tests" / "testdata" / "inputs"

CASES = {
    "tcp-echo-all-v1": [ROOT / "samples/tcp-echo"],
    "tcp-echo-80-20": [ROOT / "samples/tcp-echo", ROOT / "samples/tcp-echo-shift/tcp-echo-20-v2.yaml"],
    "tcp-echo-20-80": [ROOT / "samples/tcp-echo", ROOT / "samples/tcp-echo-shift/tcp-echo-80-v2.yaml"],
    "two-gateways": [ROOT / "samples/two-gateways"],
    "appendix-a": [INPUTS / "appendix-a.yaml"],
    "seed002-tcp-routing": [INPUTS / "seed002-tcp-routing.yaml"],
    "seed003-no-subsets": [ROOT / "samples/tcp-echo/tcp-echo-services.yaml", INPUTS / "seed003-no-subsets.yaml"],
    "seed003-20-80": [
        ROOT / "samples/tcp-echo/tcp-echo-services.yaml",
        INPUTS / "seed003-no-subsets.yaml",
        INPUTS / "seed003-20-80.yaml",
    ],
    "weights-edge": [INPUTS / "weights-edge.yaml"],
}


INLINE = TranslateOptions(inline_weights=True)
"""istiod's exact form: the goldens of istiod-derived cases; test_golden_ecds.py covers the default mode."""


def render_case(paths: list[Path], options: TranslateOptions = INLINE) -> str:
    namespace = "istio-io-tcp-traffic-shifting" if any("seed003" in p.name for p in paths) else "default"
    config, problems = load_config(paths, namespace)
    errors = [str(p) for p in problems if p.is_error]
    assert not errors, errors
    resources = translate(config, Proxy.gateway(), options)
    assert resources.references == walked(resources)  # reported with the resources, not part of them
    assert_canonical(resources)
    text = dump_yaml(resources_to_dict(resources))
    return text.replace(str(ROOT) + "/", "")


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_config_matches_golden(case: str) -> None:
    actual = render_case(CASES[case])
    assert_matches_golden(case, actual)
