"""Gateway HTTP servers: the listener (HCM with RDS ``http.<port>``) and RouteConfiguration for seed 001's steps,
compared to goldens (UPDATE_GOLDEN=1 regenerates), and the properties a route change must keep."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.v3 import percent_pb2

from tcpmesh.commands.offline import proxy_from_args
from tcpmesh.model.config import Config, load_config
from tcpmesh.render import static_bootstrap
from tcpmesh.runtime.envoy import validate_config
from tcpmesh.translator import EnvoyResources, TranslateOptions, translate
from tcpmesh.translator.incremental import IncrementalTranslator
from tests.pki import TestCA

from .golden import assert_matches_golden
from .test_golden import render_case

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "bookinfo-reviews"
BASE = [SAMPLE / "reviews-services.yaml", SAMPLE / "reviews-gateway.yaml"]
STEPS = {
    "http-reviews-all-v1": BASE,
    "http-reviews-80-20": [*BASE, SAMPLE / "reviews-80-20.yaml"],
    "http-reviews-jason-v2": [*BASE, SAMPLE / "reviews-jason-v2.yaml"],
    "http-reviews-jason-abort": [*BASE, SAMPLE / "reviews-jason-abort.yaml"],
    "http-reviews-jason-delay": [*BASE, SAMPLE / "reviews-jason-delay.yaml"],
    "http-reviews-timeout": [*BASE, SAMPLE / "reviews-timeout.yaml"],
    "http-features": [ROOT / "tests" / "testdata" / "inputs" / "http-features.yaml"],
    "http-https": [ROOT / "tests" / "testdata" / "inputs" / "http-https.yaml"],
    "http-delegate": [ROOT / "tests" / "testdata" / "inputs" / "http-delegate.yaml"],
}


@pytest.mark.parametrize("case", sorted(STEPS))
def test_http_gateway_matches_golden(case: str) -> None:
    assert_matches_golden(case, render_case(STEPS[case], TranslateOptions()))


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(STEPS))
def test_real_envoy_accepts_http_gateway_config(case: str, tmp_path: Path) -> None:
    """``envoy --mode validate`` on the static form (routes inlined in the HCM, as static_bootstrap does);
    certificate files named by the input are made in ``tmp_path`` (Envoy reads them)."""
    _, resources = _resources(_with_certificates(STEPS[case], tmp_path))
    bootstrap = static_bootstrap(resources)
    bootstrap["node"] = {"id": "validate", "cluster": "validate"}  # SDS (credentialName) needs a node
    ok, output = validate_config(bootstrap)
    assert ok, output[-3000:]


def test_inline_weights_mode_builds_the_same_http_config() -> None:
    """ECDS and the drain filter concern tcp_proxy chains only: HTTP chains are the same in both modes."""
    for paths in STEPS.values():
        assert render_case(paths, TranslateOptions()) == render_case(paths, TranslateOptions(inline_weights=True))


def _with_certificates(paths: list[Path], tmp_path: Path) -> list[Path]:
    """The inputs with ``/etc/certs/<name>.pem|.key`` pointing at a certificate and key made for the test."""
    out = []
    ca = TestCA()
    for path in paths:
        text = path.read_text()
        for name in sorted(set(re.findall(r"/etc/certs/([\w-]+)\.pem", text))):
            issued = ca.issue([f"{name}.example.com"])
            (tmp_path / f"{name}.pem").write_bytes(issued.cert)
            (tmp_path / f"{name}.key").write_bytes(issued.key)
        out.append(tmp_path / path.name)
        out[-1].write_text(text.replace("/etc/certs/", f"{tmp_path}/"))
    return out


def _resources(paths: list[Path]) -> tuple[Config, EnvoyResources]:
    config, problems = load_config(paths, "default")
    assert not [p for p in problems if p.is_error]
    return config, translate(config, proxy_from_args("gateway", None, None))


def _gateway_route_config(tmp_path: Path, virtual_service: str) -> Any:
    """The route config of the sample's gateway with ``virtual_service`` (YAML) bound to it."""
    gateway = (SAMPLE / "reviews-gateway.yaml").read_text().split("\n---\n")[0]
    (tmp_path / "in.yaml").write_text(gateway + "\n---\n" + virtual_service)
    _, out = _resources([tmp_path / "in.yaml"])
    (config,) = out.routes
    return config


def test_route_change_leaves_the_listener_unchanged() -> None:
    """RDS carries every step: the listener's bytes stay the same, so Envoy keeps (does not drain) it."""
    _, first = _resources(STEPS["http-reviews-all-v1"])
    for case in ("http-reviews-80-20", "http-reviews-jason-v2", "http-reviews-jason-abort"):
        _, step = _resources(STEPS[case])
        assert [m.SerializeToString(deterministic=True) for m in step.listeners] == [
            m.SerializeToString(deterministic=True) for m in first.listeners
        ]
        assert step.routes != first.routes


def test_incremental_translator_serves_routes_like_translate() -> None:
    translator = IncrementalTranslator(proxy_from_args("gateway", None, None))
    for case in ("http-reviews-all-v1", "http-reviews-80-20", "http-reviews-jason-abort"):
        config, full = _resources(STEPS[case])
        assert translator.update(config) == full
        assert set(translator.serialized()["routes"]) == {"http.8080"}


def test_gateway_without_http_virtual_service_gets_a_404_virtual_host(tmp_path: Path) -> None:
    """buildGatewayHTTPRouteConfig: no virtual host at all → one ``blackhole:<port>`` without routes (404)."""
    gateway = (SAMPLE / "reviews-gateway.yaml").read_text().split("\n---\n")[0]
    (tmp_path / "gw.yaml").write_text(gateway)
    _, out = _resources([tmp_path / "gw.yaml"])
    (route_config,) = out.routes
    assert route_config.name == "http.8080"
    assert [(v.name, list(v.domains), len(v.routes)) for v in route_config.virtual_hosts] == [
        ("blackhole:8080", ["*"], 0)
    ]
    (listener,) = out.listeners
    assert listener.name == "0.0.0.0_8080"


def test_virtual_hosts_take_the_more_specific_host_and_filter_matches() -> None:
    _, out = _resources(STEPS["http-features"])
    (config,) = out.routes
    by_host = {v.name: [r.name for r in v.routes] for v in config.virtual_hosts}
    # shop.example.com ⊂ *.example.com: its own virtual host; the port-9999 and other-gateway matches are not
    # routes; catch-alls last.
    assert by_host == {
        "*.example.com:8080": ["api.exact", "api.regex", "api.not-beta", "moved", "no-retries"],
        "bookinfo.com:8080": ["api.exact", "api.regex", "api.not-beta", "moved", "no-retries"],
        "edge.example.com:8080": ["", "", "", "", ""],
        "shop.example.com:8080": [""],
    }
    (edge,) = [v for v in config.virtual_hosts if v.name == "edge.example.com:8080"]
    moved, health, binary, two, mirrored = edge.routes
    assert (moved.redirect.path_redirect, moved.redirect.host_redirect, moved.redirect.port_redirect) == (
        "/new",
        "new.example.com",
        8443,
    )
    assert moved.redirect.response_code == moved.redirect.PERMANENT_REDIRECT
    assert (health.direct_response.status, health.direct_response.body.inline_string) == (200, "ok")
    assert binary.direct_response.body.inline_bytes == b"hello"
    # 5 % per million; no percentage: istiod's 100 per hundred.
    assert [
        (p.runtime_fraction.default_value.numerator, p.runtime_fraction.default_value.denominator)
        for p in two.route.request_mirror_policies
    ] == [(50_000, percent_pb2.FractionalPercent.MILLION), (100, percent_pb2.FractionalPercent.HUNDRED)]
    (policy,) = mirrored.route.request_mirror_policies
    assert policy.cluster == "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert policy.runtime_fraction.default_value.numerator == 255_000
    (shop,) = [v for v in config.virtual_hosts if v.name == "shop.example.com:8080"]
    weighted = shop.routes[0].route.weighted_clusters.clusters
    assert [(c.name.split("|")[2], c.weight.value) for c in weighted] == [("v1", 90), ("v2", 10)]


def test_delegate_rules_merge_into_the_root_as_istiod_merges_them() -> None:
    """MergeHTTPRoutes: delegate matches narrowed by each root match they fit, names joined, the root's timeout,
    retries and CORS filling the gaps; the delegate's short hosts in its own namespace; a rule outside every root
    match, a missing delegate and one not exported to the root's namespace contribute nothing."""
    _, out = _resources(STEPS["http-delegate"])
    (config,) = out.routes
    (vhost,) = config.virtual_hosts
    routes = {r.name: r for r in vhost.routes}
    assert list(routes) == [
        "reviews-v2.v1-path",
        "reviews-jason.v1-path",
        "reviews-jason",
        "reviews.v1-path",
        "reviews",
        "headers",
        "regex",
        "derive",
        "default-port",
        "split",
    ]
    v2, jason = routes["reviews-v2.v1-path"], routes["reviews-jason"]
    assert v2.match.prefix == "/reviews/v2"
    assert v2.route.cluster == "outbound|9080|v2|reviews.reviews-team.svc.cluster.local"
    assert (v2.route.timeout.seconds, jason.route.timeout.seconds) == (6, 1)  # the root's, the delegate's own
    assert not v2.route.HasField("retry_policy")  # the root's attempts: 0
    assert jason.match.prefix == "/api/reviews"
    assert [h.name for h in jason.match.headers] == ["end-user", "x-team"]  # merged, sorted as istiod sorts
    assert "envoy.filters.http.cors" in v2.typed_per_filter_config
    assert not any("ratings" in name or "v3" in r.route.cluster for name, r in routes.items())
    regex = routes["regex"]
    assert (regex.stat_prefix, regex.route.regex_rewrite.pattern.regex) == ("versioned", "^/v[0-9]+/(.*)")
    assert regex.route.regex_rewrite.substitution == "/\\1"
    assert routes["derive"].redirect.port_redirect == 8080  # FROM_REQUEST_PORT: the listener's port
    assert routes["default-port"].redirect.port_redirect == 0  # 443 is https's default: left out


def test_a_match_naming_the_gateway_applies_whatever_its_source_labels(tmp_path: Path) -> None:
    """route.go sourceMatchHTTP: with ``gateways`` in a match, the gateway decides; ``sourceLabels`` are only looked
    at in a match without gateways."""
    config = _gateway_route_config(
        tmp_path,
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: ["*"]
  gateways: [reviews-gateway]
  http:
  - name: named
    match: [{gateways: [reviews-gateway], sourceLabels: {app: sleep}, uri: {prefix: /a}}]
    route: [{destination: {host: reviews}}]
  - name: labelled
    match: [{sourceLabels: {app: sleep}, uri: {prefix: /b}}]
    route: [{destination: {host: reviews}}]
""",
    )
    assert [r.name for v in config.virtual_hosts for r in v.routes] == ["named"]


def test_fault_without_percentage_injects_nothing_as_in_istiod(tmp_path: Path) -> None:
    """TranslateFault: a delay without percentage takes the deprecated integer percent (0 when absent, "if left
    unspecified, no request will be delayed"); an abort without one carries none, which Envoy reads as 0 %."""
    config = _gateway_route_config(
        tmp_path,
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: ["*"]
  gateways: [reviews-gateway]
  http:
  - name: bare
    match: [{uri: {prefix: /bare}}]
    fault: {delay: {fixedDelay: 7s}, abort: {httpStatus: 500}}
    route: [{destination: {host: reviews}}]
  - name: grpc
    match: [{uri: {prefix: /grpc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.57}}}
    route: [{destination: {host: reviews}}]
  - name: percent
    fault: {delay: {fixedDelay: 1s, percent: 30}}
    route: [{destination: {host: reviews}}]
""",
    )
    faults = {}
    for r in config.virtual_hosts[0].routes:
        fault = fault_pb2.HTTPFault()
        assert r.typed_per_filter_config["envoy.filters.http.fault"].Unpack(fault)
        faults[r.name] = fault
    bare, percent = faults["bare"], faults["percent"]
    hundred = percent_pb2.FractionalPercent.HUNDRED
    assert (bare.delay.percentage.numerator, bare.delay.percentage.denominator) == (0, hundred)
    assert not bare.abort.HasField("percentage")
    assert (percent.delay.percentage.numerator, percent.delay.percentage.denominator) == (30, hundred)
    grpc = faults["grpc"]
    assert grpc.abort.grpc_status == 14  # UNAVAILABLE
    assert grpc.abort.percentage.numerator == 5699  # uint32(0.57 * 10000): Go truncates 5699.99…


def test_gateway_api_semantics_as_istiod_translates_converted_routes(tmp_path: Path) -> None:
    """model.UseGatewaySemantics (a VirtualService converted from an HTTPRoute): PathPrefix matches whole
    segments (path_separated_prefix), ReplacePrefixMatch "/" removes the prefix by regex, an invalid backend is a
    500; and every route bounds grpc-timeout by its timeout (setTimeout)."""
    gateway = (SAMPLE / "reviews-gateway.yaml").read_text().split("\n---\n")[0]
    (tmp_path / "in.yaml").write_text(
        gateway
        + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: converted
  annotations: {internal.istio.io/route-semantics: gateway}
spec:
  hosts: ["*"]
  gateways: [reviews-gateway]
  http:
  - name: strip
    match: [{uri: {prefix: /api.v1/}}]
    rewrite: {uri: /}
    timeout: 2s
    route: [{destination: {host: reviews}}]
"""
    )
    _, out = _resources([tmp_path / "in.yaml"])
    ((route,),) = [list(v.routes) for v in out.routes[0].virtual_hosts]
    assert route.match.path_separated_prefix == "/api.v1"
    assert (route.route.regex_rewrite.pattern.regex, route.route.regex_rewrite.substitution) == (
        r"^/api\.v1(/?)(.*)",
        r"/\2",
    )
    assert route.route.cluster_not_found_response_code == route.route.INTERNAL_SERVER_ERROR
    assert route.route.max_grpc_timeout.seconds == route.route.timeout.seconds == 2


def test_a_virtual_services_routes_stop_at_its_first_catch_all_on_a_gateway(tmp_path: Path) -> None:
    """BuildHTTPRoutesForVirtualService: after a catch-all route nothing of that VirtualService can match, so
    istiod drops the rest (here jason's rule): a gateway must not move it ahead by sorting catch-alls last."""
    config = _gateway_route_config(
        tmp_path,
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: ["*"]
  gateways: [reviews-gateway]
  http:
  - name: everyone
    route: [{destination: {host: reviews, subset: v1}}]
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
""",
    )
    assert [r.name for v in config.virtual_hosts for r in v.routes] == ["everyone"]
