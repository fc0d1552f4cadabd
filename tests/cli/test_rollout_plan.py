"""The rollout's weight plan and VirtualService edit (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpmesh.rollout import (
    RolloutError,
    backend_host,
    plan_backends,
    plan_routes,
    step_weights,
    with_backend_weights,
    with_weights,
)

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


# --- Gateway API routes: backendRefs by name ---------------------------------------------------------------------

ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1alpha2",
    "kind": "TCPRoute",
    "metadata": {"name": "tcp-echo", "namespace": "default", "resourceVersion": "7"},
    "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "tcp-echo-v1", "port": 9000}]}]},
    "status": {"parents": []},
}


def test_a_route_gets_the_target_backend_added_and_every_weight_written() -> None:
    plans = plan_backends(ROUTE, "tcp-echo-v2")
    assert [(p.index, dict(p.start)) for p in plans] == [(0, {"tcp-echo-v1": 1})]  # Gateway API's default weight
    steps = [with_backend_weights(ROUTE, plans, "tcp-echo-v2", s)["spec"]["rules"][0]["backendRefs"] for s in (20, 100)]
    assert steps[0] == [
        {"name": "tcp-echo-v1", "port": 9000, "weight": 80},
        {"name": "tcp-echo-v2", "port": 9000, "weight": 20},
    ]
    # At 100 % the old backend stays listed at weight 0 (no connections), so `drain --backend` can still name it.
    assert steps[1] == [
        {"name": "tcp-echo-v1", "port": 9000, "weight": 0},
        {"name": "tcp-echo-v2", "port": 9000, "weight": 100},
    ]
    out = with_backend_weights(ROUTE, plans, "tcp-echo-v2", 20)
    assert "resourceVersion" not in out["metadata"]
    assert "status" not in out
    assert ROUTE["spec"]["rules"][0]["backendRefs"] == [{"name": "tcp-echo-v1", "port": 9000}]  # not mutated


def test_a_route_keeps_its_other_backends_proportions_and_their_fields() -> None:
    route = {"spec": {"rules": [{"backendRefs": [
        {"name": "a", "port": 1, "weight": 60}, {"name": "b", "namespace": "web", "port": 2, "weight": 20},
        {"name": "c", "port": 3, "weight": 20},
    ]}]}}  # fmt: skip
    plans = plan_backends(route, "c")
    refs = with_backend_weights(route, plans, "c", 60)["spec"]["rules"][0]["backendRefs"]
    assert refs == [{"name": "a", "port": 1, "weight": 30}, {"name": "b", "namespace": "web", "port": 2, "weight": 10},
                    {"name": "c", "port": 3, "weight": 60}]  # fmt: skip
    assert backend_host(refs[1], "default") == "b.web.svc.cluster.local"
    assert backend_host({"name": "db.example.com", "kind": "Hostname", "group": "networking.istio.io"}, "x") == (
        "db.example.com"
    )


def test_a_route_whose_backends_differ_in_port_needs_the_target_listed() -> None:
    route = {"spec": {"rules": [{"backendRefs": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}]}}
    with pytest.raises(RolloutError, match="no backendRef 'c' and its backends' ports differ"):
        plan_backends(route, "c")
    twice = {
        "spec": {"rules": [{"backendRefs": [{"name": "a", "port": 1}, {"name": "a", "namespace": "x", "port": 1}]}]}
    }
    with pytest.raises(RolloutError, match="names a backend twice"):
        plan_backends(twice, "a")
