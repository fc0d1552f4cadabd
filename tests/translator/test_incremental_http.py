"""IncrementalTranslator with HTTP: after every edit of a random sequence that mixes test_incremental's L4 edits
with HTTP ones (an HTTP/HTTPS Gateway, http: rules, a delegate), every kind — RouteConfigurations included — equals
translate(config); an http: edit rebuilds routes only."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpmesh.model.config import Config
from tcpmesh.model.resources import Resource
from tcpmesh.translator import translate
from tcpmesh.translator.incremental import IncrementalTranslator
from tests.references import walked

from .test_incremental import GATEWAY, SERVICES, _base, _config, _edit, _one, _replace_or_add, _secret


def _web(https: bool, redirect: bool, port: int = 8080) -> Resource:
    """A second Gateway (test_incremental's edits replace ``gw``): HTTP on ``port``, optionally HTTPS on 8443."""
    tls = "\n    tls: {httpsRedirect: true}" if redirect else ""
    servers = f"\n  - port: {{number: {port}, name: http, protocol: HTTP}}\n    hosts: ['*']{tls}"
    if https:
        servers += (
            "\n  - port: {number: 8443, name: https, protocol: HTTPS}\n    hosts: [shop.example.com]"
            "\n    tls: {mode: SIMPLE, credentialName: cred-a}"
        )
    return _one(
        f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:{servers}
"""
    )


def _http_vs(i: int, w1: int, prefix: str, delegate: bool) -> Resource:
    rule = (
        f"  - match: [{{uri: {{prefix: {prefix}}}}}]\n    delegate: {{name: team}}\n"
        if delegate
        else f"  - match: [{{uri: {{prefix: {prefix}}}}}]\n    route:\n"
        f"    - {{destination: {{host: svc-{i}, subset: v1}}, weight: {w1}}}\n"
        f"    - {{destination: {{host: svc-{i}, subset: v2}}, weight: {100 - w1}}}\n"
    )
    return _one(
        f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: http-{i % 2}, namespace: default}}
spec:
  hosts: ['*.example.com']
  gateways: [web]
  http:
{rule}  - route: [{{destination: {{host: svc-{i}}}}}]
"""
    )


def _delegate(i: int, timeout: int) -> Resource:
    return _one(
        f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: team, namespace: default}}
spec:
  http:
  - match: [{{uri: {{prefix: /api/v{timeout}}}}}]
    timeout: {timeout}s
    route: [{{destination: {{host: svc-{i}, subset: v2}}}}]
  - route: [{{destination: {{host: svc-{i}}}}}]
"""
    )


def _http_base() -> dict[str, list[Any]]:
    parts = _base()
    parts["gateways"].append(_web(https=True, redirect=False))
    parts["virtual_services"] += [_http_vs(0, 80, "/a", delegate=False), _delegate(1, 2)]
    parts["secrets"] = [_secret("cred-a", 0, True)]
    return parts


def _http_edit(rnd: random.Random, parts: dict[str, list[Any]]) -> str:
    i = rnd.randrange(SERVICES)
    op = rnd.randrange(10)
    if op <= 3:
        w1 = rnd.choice((0, 20, 80, 100))
        prefix = rnd.choice(("/a", "/b"))
        _replace_or_add(parts["virtual_services"], _http_vs(i, w1, prefix, delegate=rnd.random() < 0.3))
        return "http vs"
    if op == 4:
        _replace_or_add(parts["virtual_services"], _delegate(i, rnd.choice((1, 2, 5))))
        return "delegate"
    if op == 5:
        web = _web(https=rnd.random() < 0.5, redirect=rnd.random() < 0.5, port=rnd.choice((8080, 8081)))
        parts["gateways"] = [g for g in parts["gateways"] if g.meta.name != "web"] + [web]
        return "web gateway"
    if op == 6:
        vss = parts["virtual_services"]
        http = [k for k, v in enumerate(vss) if v.http]
        if http:
            vss.pop(rnd.choice(http))
        return "http vs removed"
    return _edit(rnd, parts)  # an L4 edit (the gateway named gw, rules, services, workloads, secrets)


def _as_bytes(resources: Any) -> dict[str, Any]:
    """Names and bytes per kind, and the references reported with them (checked against a walk first)."""
    assert resources.references == walked(resources)
    kinds = ("listeners", "clusters", "endpoints", "extension_configs", "routes", "secrets")
    out: dict[str, Any] = {
        kind: [
            (getattr(m, "name", "") or m.cluster_name, m.SerializeToString(deterministic=True))
            for m in getattr(resources, kind)
        ]
        for kind in kinds
    }
    out["references"] = resources.references
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=12))
def test_incremental_with_http_equals_full_translate(rnd: random.Random, edits: int) -> None:
    parts = _http_base()
    inc = IncrementalTranslator(GATEWAY)
    config = _config(parts)
    assert _as_bytes(inc.update(config)) == _as_bytes(translate(config, GATEWAY))
    history = []
    for _ in range(edits):
        history.append(_http_edit(rnd, parts))
        config = _config(parts)
        assert _as_bytes(inc.update(config)) == _as_bytes(translate(config, GATEWAY)), history
        served = inc.serialized()
        assert set(served["routes"]) == {r.name for r in inc.resources.routes}, history


def test_http_rule_edit_changes_routes_only() -> None:
    parts = _http_base()
    inc = IncrementalTranslator(GATEWAY)
    inc.update(_config(parts))
    assert inc.changes.mode == "full"
    _replace_or_add(parts["virtual_services"], _http_vs(0, 20, "/a", delegate=False))
    config: Config = _config(parts)
    assert _as_bytes(inc.update(config)) == _as_bytes(translate(config, GATEWAY))
    assert inc.changes.mode == "incremental"
    both = frozenset({"http.8080", "https.8443.https.web.default"})  # *.example.com is on both servers
    assert {k: v for k, v in inc.changes.changed.items() if v} == {"routes": both}
    # A delegate edit reaches the root's routes the same way.
    _replace_or_add(parts["virtual_services"], _delegate(1, 5))
    _replace_or_add(parts["virtual_services"], _http_vs(0, 20, "/a", delegate=True))
    config = _config(parts)
    assert _as_bytes(inc.update(config)) == _as_bytes(translate(config, GATEWAY))
    assert {k: v for k, v in inc.changes.changed.items() if v} == {"routes": both}
    (route_config,) = [r for r in inc.resources.routes if r.name == "http.8080"]
    assert any(r.route.timeout.seconds == 5 for v in route_config.virtual_hosts for r in v.routes)
