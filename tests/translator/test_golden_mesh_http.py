"""Sidecar HTTP: per-address listeners with an HCM fetching route config ``<port>`` by RDS, virtual hosts as
istiod builds them for a sidecar, for seed 001's reviews steps and its edition.cnn.com egress flow, compared to
goldens (UPDATE_GOLDEN=1 regenerates), validated by Envoy, and the properties a route change must keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpmesh.model.config import Config, load_config
from tcpmesh.render import static_bootstrap
from tcpmesh.runtime.envoy import validate_config
from tcpmesh.translator import EnvoyResources, Proxy, TranslateOptions, translate
from tcpmesh.translator.incremental import IncrementalTranslator

from .golden import assert_matches_golden
from .test_golden_mesh import Case, render_mesh_case, translate_case

ROOT = Path(__file__).resolve().parents[2]
REVIEWS = ROOT / "samples" / "bookinfo-reviews"
MESH = REVIEWS / "mesh"
EGRESS = ROOT / "samples" / "egress"
INPUTS = ROOT / "tests" / "testdata" / "inputs"
SERVICES = REVIEWS / "reviews-services.yaml"
ECDS = TranslateOptions()

SIDECAR_CASES = {
    "mesh-http-reviews-default": Case((SERVICES,)),
    "mesh-http-reviews-all-v1": Case((SERVICES, MESH / "reviews-all-v1.yaml")),
    "mesh-http-reviews-80-20": Case((SERVICES, MESH / "reviews-80-20.yaml")),
    "mesh-http-reviews-jason-v2": Case((SERVICES, MESH / "reviews-jason-v2.yaml")),
    "mesh-http-reviews-jason-abort": Case((SERVICES, MESH / "reviews-jason-abort.yaml")),
    "mesh-http-reviews-jason-delay": Case((SERVICES, MESH / "reviews-jason-delay.yaml")),
    "mesh-http-serviceentry": Case((EGRESS / "cnn-service-entry.yaml",)),
    "mesh-http-egress-sidecar": Case((EGRESS,)),
    "mesh-http-features": Case((INPUTS / "mesh-http-features.yaml",)),
}
EGRESS_GATEWAY = Proxy.gateway("istio-system", (("istio", "egressgateway"),))


def _egress_gateway_resources() -> EnvoyResources:
    config, problems = load_config([EGRESS], "default")
    assert not [p for p in problems if p.is_error]
    return translate(config, EGRESS_GATEWAY, ECDS)


@pytest.mark.parametrize("case", sorted(SIDECAR_CASES))
def test_sidecar_http_matches_golden(case: str) -> None:
    assert_matches_golden(case, render_mesh_case(SIDECAR_CASES[case], ECDS))


def test_egress_gateway_matches_golden() -> None:
    from tcpmesh.render import dump_yaml, resources_to_dict

    assert_matches_golden("mesh-http-egress-gateway", dump_yaml(resources_to_dict(_egress_gateway_resources())))


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(SIDECAR_CASES))
def test_real_envoy_accepts_sidecar_http_config(case: str) -> None:
    """``envoy --mode validate`` on the static form (routes inlined in each HCM)."""
    ok, output = validate_config(static_bootstrap(translate_case(SIDECAR_CASES[case], ECDS)))
    assert ok, output[-3000:]


@pytest.mark.envoy
def test_real_envoy_accepts_egress_gateway_config() -> None:
    ok, output = validate_config(static_bootstrap(_egress_gateway_resources()))
    assert ok, output[-3000:]


def test_inline_weights_mode_builds_the_same_http_config() -> None:
    """ECDS and the drain filter concern tcp_proxy chains: the HTTP listeners and routes are the same."""
    for name in ("mesh-http-reviews-80-20", "mesh-http-egress-sidecar"):
        ecds, inline = translate_case(SIDECAR_CASES[name], ECDS), translate_case(SIDECAR_CASES[name])
        assert ecds.routes == inline.routes
        assert [r for r in ecds.listeners if r.name.endswith("_9080") or r.name.endswith("_80")] == [
            r for r in inline.listeners if r.name.endswith("_9080") or r.name.endswith("_80")
        ]


def _bytes(messages: tuple[object, ...]) -> list[bytes]:
    return [m.SerializeToString(deterministic=True) for m in messages]  # type: ignore[attr-defined]


def test_route_change_leaves_the_listener_unchanged() -> None:
    """RDS carries every step: the listener's bytes stay the same, so Envoy keeps (does not drain) it."""
    first = translate_case(SIDECAR_CASES["mesh-http-reviews-default"], ECDS)
    steps = ("all-v1", "80-20", "jason-v2", "jason-abort", "jason-delay")
    for case in (f"mesh-http-reviews-{s}" for s in steps):
        step = translate_case(SIDECAR_CASES[case], ECDS)
        assert _bytes(step.listeners) == _bytes(first.listeners)
        assert step.routes != first.routes


def test_incremental_translator_serves_sidecar_routes_like_translate() -> None:
    translator = IncrementalTranslator(Proxy.sidecar("default", (("app", "sleep"),)))
    for case in ("mesh-http-reviews-default", "mesh-http-reviews-80-20", "mesh-http-reviews-jason-v2"):
        config = _config(SIDECAR_CASES[case])
        assert translator.update(config) == translate_case(SIDECAR_CASES[case], ECDS)
        assert set(translator.serialized()["routes"]) == {"9080"}


def _config(case: Case) -> Config:
    config, problems = load_config(list(case.inputs), "default")
    assert not [p for p in problems if p.is_error]
    return config


def _vhosts(case: Case) -> dict[str, list[str]]:
    (routes,) = translate_case(case, ECDS).routes
    return {v.name: [r.name for r in v.routes] for v in routes.virtual_hosts}


def test_virtual_hosts_resolve_source_predicates_for_the_proxy() -> None:
    features = SIDECAR_CASES["mesh-http-features"]
    # sleep in default: only the ``mesh``-named match (its sourceLabels ignored, as sourceMatchHTTP does) and the
    # catch-all; nothing after the catch-all; reviews-again is a duplicate; the wildcard VS takes details and
    # ratings (the VS bound to a gateway is not the sidecar's); legacy is TCP, no virtual host.
    assert _vhosts(features) == {
        "bookinfo.example.com:9080": ["mesh-by-name", "all"],
        "details.default.svc.cluster.local:9080": [""],
        "ratings.shop.svc.cluster.local:9080": [""],
        "reviews.default.svc.cluster.local:9080": ["mesh-by-name", "all"],
        "block_all": ["block_all"],
    }
    # A source-only match that applies is a catch-all for this proxy: it ends the routes (istiod does the same).
    curl = Case(features.inputs, labels=(("app", "curl"),))
    assert _vhosts(curl)["reviews.default.svc.cluster.local:9080"] == ["from-curl"]
    test_ns = Case(features.inputs, namespace="test")
    assert _vhosts(test_ns)["reviews.default.svc.cluster.local:9080"] == ["other-namespace"]


def test_domains_follow_the_proxy_namespace() -> None:
    (routes,) = translate_case(SIDECAR_CASES["mesh-http-features"], ECDS).routes
    domains = {v.name: list(v.domains) for v in routes.virtual_hosts}
    reviews, ratings = domains["reviews.default.svc.cluster.local:9080"], domains["ratings.shop.svc.cluster.local:9080"]
    assert reviews[:5] == [
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local.",
        "reviews",
        "reviews.default.svc",
        "reviews.default",
    ]
    assert ratings[:4] == [
        "ratings.shop.svc.cluster.local",
        "ratings.shop.svc.cluster.local.",
        "ratings.shop",
        "ratings.shop.svc",
    ]
    assert "ratings" not in ratings
    all_domains = [d for v in routes.virtual_hosts for d in v.domains]
    assert len(all_domains) == len(set(all_domains)), "Envoy rejects a domain on two virtual hosts"


def test_tcp_and_http_ports_get_their_own_listeners() -> None:
    out = translate_case(SIDECAR_CASES["mesh-http-features"], ECDS)
    hcm = "envoy.filters.network.http_connection_manager"
    kinds = {r.name: r.filter_chains[0].filters[0].name for r in out.listeners}
    assert sorted(kinds.values()).count(hcm) == 3  # details, ratings, reviews; legacy keeps its tcp_proxy chain
    assert len(kinds) == 4
