"""The rollout's weight plan and VirtualService edit (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpmesh.rollout import RolloutError, plan_routes, step_weights, with_weights

V1 = {"host": "tcp-echo", "port": {"number": 9000}, "subset": "v1"}
VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "tcp-echo", "namespace": "default", "resourceVersion": "7"},
    "spec": {
        "hosts": ["*"],
        "gateways": ["tcp-echo-gateway"],
        "tcp": [{"match": [{"port": 31400}], "route": [{"destination": V1}]}],
    },
}


def test_steps_from_all_v1() -> None:
    assert step_weights({"v1": 100}, "v2", 10) == {"v1": 90, "v2": 10}
    assert step_weights({"v1": 100}, "v2", 100) == {"v1": 0, "v2": 100}


def test_others_keep_their_proportions() -> None:
    assert step_weights({"v1": 60, "v2": 30, "v3": 10}, "v3", 50) == {"v1": 33, "v2": 17, "v3": 50}


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 100), min_size=1), st.integers(0, 100))
def test_weights_always_sum_to_100(start: dict[str, int], percent: int) -> None:
    weights = step_weights(start, "t", percent)
    assert sum(weights.values()) == 100
    assert weights["t"] == percent
    assert all(w >= 0 for w in weights.values())


def test_edit_adds_the_target_destination_and_drops_server_fields() -> None:
    plans = plan_routes(VS, "v2")
    out = with_weights(VS, plans, "v2", 25)
    assert out["spec"]["tcp"][0]["route"] == [
        {"destination": {"host": "tcp-echo", "port": {"number": 9000}, "subset": "v1"}, "weight": 75},
        {"destination": {"host": "tcp-echo", "port": {"number": 9000}, "subset": "v2"}, "weight": 25},
    ]
    assert "resourceVersion" not in out["metadata"]
    assert VS["spec"]["tcp"][0]["route"][0].get("weight") is None  # the original is untouched


def test_mixed_hosts_are_refused() -> None:
    route = [{"destination": {"host": "a"}, "weight": 50}, {"destination": {"host": "b"}, "weight": 50}]
    vs = {"spec": {"tcp": [{"route": route}]}}
    with pytest.raises(RolloutError, match="mixes a with other hosts"):
        plan_routes(vs, "v2")
