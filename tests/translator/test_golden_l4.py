"""Goldens for gateway TLS, ServiceEntry and DestinationRule traffic policy (reference §2–§4).

Regenerate after an intended change with: UPDATE_GOLDEN=1 .venv/bin/pytest tests/translator/test_golden_l4.py
"""

from __future__ import annotations

import difflib
import os

import pytest

from .test_golden import GOLDEN, INPUTS, render_case

CASES = ["l4-tls-passthrough", "l4-tls-terminate", "l4-serviceentry", "l4-traffic-policy"]


@pytest.mark.parametrize("case", CASES)
def test_l4_config_matches_golden(case: str) -> None:
    actual = render_case([INPUTS / f"{case}.yaml"])
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(actual)
    assert golden.exists(), f"missing golden {golden}; run with UPDATE_GOLDEN=1"
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "golden", "actual"))
        pytest.fail(f"{case} differs from its golden (UPDATE_GOLDEN=1 to accept):\n{diff}")
