"""Goldens for gateway TLS, ServiceEntry and DestinationRule traffic policy (reference §2–§4).

Regenerate after an intended change with: UPDATE_GOLDEN=1 .venv/bin/pytest tests/translator/test_golden_l4.py
"""

from __future__ import annotations

import pytest

from .golden import assert_matches_golden
from .test_golden import INPUTS, render_case

CASES = ["l4-tls-passthrough", "l4-tls-terminate", "l4-serviceentry", "l4-traffic-policy", "sds-credentials"]


@pytest.mark.parametrize("case", CASES)
def test_l4_config_matches_golden(case: str) -> None:
    actual = render_case([INPUTS / f"{case}.yaml"])
    assert_matches_golden(case, actual)
