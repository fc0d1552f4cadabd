from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# A test must never create a store in the checkout's own ./.tcpmesh: a newcomer's `tcpmesh up` after the tests
# would then find a store and not seed the sample (an empty config). The session fails if one appears.
_CHECKOUT_STORE = ROOT / ".tcpmesh" / "store.db"
_STORE_BEFORE = _CHECKOUT_STORE.exists()


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    if not _STORE_BEFORE and _CHECKOUT_STORE.exists() and not os.environ.get("PYTEST_XDIST_WORKER"):
        print(f"\nerror: a test created {_CHECKOUT_STORE}; tests must use their own state dirs")
        session.exitstatus = 1  # type: ignore[attr-defined]
