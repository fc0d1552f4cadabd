"""The publisher's IncrementalTranslator on Gateway API edits: after each edit (weights, backends, grants,
listeners, hostnames, a route or the Gateway removed, in any order) it equals a full translation of the converted
config."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpmesh.model.config import load_config_text
from tcpmesh.translator import Proxy, TranslateOptions, translate
from tcpmesh.translator.incremental import IncrementalTranslator

from .test_incremental import _as_bytes

PROXY = Proxy(labels=(("gateway.networking.k8s.io/gateway-name", "gw"),), namespace="default")

SERVICES = "".join(
    f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: tcp, port: 3000}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}, namespace: {ns}}}
spec: {{address: 10.0.0.{i}, labels: {{app: {name}}}}}
"""
    for i, (name, ns) in enumerate((("v1", "default"), ("v2", "default"), ("far", "web")), 1)
)

EDITS = {
    "weights": {"backends": "[{name: v1, port: 3000, weight: 80}, {name: v2, port: 3000, weight: 20}]"},
    "missing": {"backends": "[{name: v1, port: 3000}, {name: nope, port: 3000}]"},
    "cross": {"backends": "[{name: far, namespace: web, port: 3000}]"},
    "zero": {"backends": "[{name: v1, port: 3000, weight: 0}]"},
    "grant": {"grant": "yes"},
    "port": {"port": "9400"},
    "tls": {"tls": "yes"},
    "no-route": {"route": ""},
    "no-gateway": {"gateway": ""},
    "other-namespace-only": {"allowed": "Same", "route_ns": "web"},
    # `tcpmesh drain tcproute/r --backend v1` steps: an annotation edit, served as EDS metadata only.
    "drain-start": {"drain": '{"since": "2026-12-02T01:00:00.000Z", "fraction": 0.0}'},
    "drain-half": {"drain": '{"since": "2026-12-02T01:00:00.000Z", "fraction": 0.5}'},
    "drain-done": {
        "drain": '{"since": "2026-12-02T01:00:00.000Z", "fraction": 1.0}',
        "backends": "[{name: v1, port: 3000, weight: 0}, {name: v2, port: 3000}]",
    },
    "drain-removed": {"drain": ""},
}


def render(state: dict[str, str]) -> str:
    text = SERVICES
    if state["gateway"]:
        tls = (
            '\n  - {name: tls, protocol: TLS, port: 9443, hostname: "*.example.com", tls: {mode: Passthrough}}'
            if state["tls"]
            else ""
        )
        text += f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: istio
  listeners:
  - name: tcp
    protocol: TCP
    port: {state["port"]}
    allowedRoutes: {{namespaces: {{from: {state["allowed"]}}}}}{tls}
"""
    if state["route"]:
        text += f"""---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: r
  namespace: {state["route_ns"]}
  annotations: {{{"drain.tcpmesh.io/v1: '" + state["drain"] + "'" if state["drain"] else ""}}}
spec:
  parentRefs: [{{name: gw, namespace: default, sectionName: tcp}}]
  rules:
  - backendRefs: {state["backends"]}
"""
    if state["tls"]:
        text += """---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: t, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: tls}]
  hostnames: ["*.com", a.example.com]
  rules:
  - backendRefs: [{name: v2, port: 3000}]
"""
    if state["grant"]:
        text += """---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: web}
spec:
  from: [{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
"""
    return text


BASE = {
    "gateway": "yes",
    "route": "yes",
    "port": "9300",
    "allowed": "All",
    "route_ns": "default",
    "backends": "[{name: v1, port: 3000}]",
    "tls": "",
    "grant": "",
    "drain": "",
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(EDITS)), min_size=1, max_size=8), st.booleans())
def test_incremental_equals_full_translate_over_gateway_api_edits(edits: list[str], inline: bool) -> None:
    options = TranslateOptions(inline_weights=inline)
    inc = IncrementalTranslator(PROXY, options)
    state = dict(BASE)
    for edit in [None, *edits]:
        if edit is not None:
            state.update(EDITS[edit])
        config, problems = load_config_text(render(state))
        assert not [p for p in problems if p.is_error], [str(p) for p in problems]
        full = translate(config, PROXY, options)
        assert _as_bytes(inc.update(config)) == _as_bytes(full), edits
        if edit is None:
            assert [listener.name for listener in full.listeners] == ["0.0.0.0_9300"]
