"""`drain.tcpmesh.io/<backend>` on a TCPRoute / TLSRoute: validated with located problems, carried through the
conversion to the generated VirtualServices keyed by backend host and port (weight 0 included), and served as EDS
metadata on that backend's endpoints only."""

from __future__ import annotations

import pytest

from tcpmesh.model.config import load_config_text
from tcpmesh.model.drain import Drain, drain_annotation, drains_of
from tcpmesh.translator import Proxy, TranslateOptions, translate
from tcpmesh.translator.drain import DRAIN_METADATA, drain_targets

SINCE = "2026-12-02T01:00:00.000Z"

ROUTE = """\
apiVersion: v1
kind: Service
metadata: {{name: echo-v1, namespace: default}}
spec:
  selector: {{app: echo, version: v1}}
  ports: [{{name: tcp, port: 9000}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo-v2, namespace: default}}
spec:
  selector: {{app: echo, version: v2}}
  ports: [{{name: tcp, port: 9000}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: v1, namespace: default}}
spec: {{address: 10.0.0.1, labels: {{app: echo, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: v2, namespace: default}}
spec: {{address: 10.0.0.2, labels: {{app: echo, version: v2}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: istio
  listeners: [{{name: tcp, protocol: TCP, port: 31400}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: echo
  namespace: default
  annotations:
    {key}: '{value}'
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs:
    - {{name: echo-v1, port: 9000, weight: {w1}}}
    - {{name: echo-v2, port: 9000, weight: 100}}
"""
ROUTE_LINE = 38  # the annotation's line


def load(key: str, value: str, w1: int = 0) -> tuple[object, list[tuple[str, int, str, str]]]:
    config, problems = load_config_text(ROUTE.format(key=key, value=value, w1=w1), "route.yaml")
    return config, [(p.file, p.line, p.severity.value, p.message) for p in problems]


@pytest.mark.parametrize("w1", [0, 30])
def test_the_drain_reaches_the_backend_even_at_weight_0(w1: int) -> None:
    key, value = drain_annotation("echo-v1", SINCE, 0.4)
    assert key == "drain.tcpmesh.io/echo-v1"
    config, problems = load(key, value, w1)
    assert problems == []
    (vs,) = [v for v in config.virtual_services if v.meta.name.startswith("echo~tcp~")]  # type: ignore[attr-defined]
    host = "echo-v1.default.svc.cluster.local"
    assert drains_of(vs) == (Drain("", SINCE, 0.4, host=host, port=9000),)
    assert [(t.host, t.subset, t.port) for t in drain_targets(vs, "cluster.local")] == [(host, "", 9000)]
    proxy = Proxy(labels=(("gateway.networking.k8s.io/gateway-name", "gw"),), namespace="default")
    out = translate(config, proxy, TranslateOptions())  # type: ignore[arg-type]
    metadata = {
        a.cluster_name: dict(a.endpoints[0].lb_endpoints[0].metadata.filter_metadata[DRAIN_METADATA].fields)
        for a in out.endpoints
        if a.endpoints
    }
    v1 = metadata["outbound|9000||echo-v1.default.svc.cluster.local"]
    assert v1["since"].string_value == SINCE
    assert v1["fraction"].number_value == 0.4
    assert metadata["outbound|9000||echo-v2.default.svc.cluster.local"] == {}  # the other backend: untouched


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "expected JSON like"),
        ('{"since": "2026-12-02T01:00:00Z", "fraction": 2}', "fraction 2 must be a number from 0 to 1"),
    ],
)
def test_a_bad_annotation_is_a_located_error_and_no_drain(value: str, message: str) -> None:
    config, problems = load("drain.tcpmesh.io/echo-v1", value)
    assert len(problems) == 1, problems
    file, line, severity, text = problems[0]
    assert (file, line, severity) == ("route.yaml", ROUTE_LINE, "error")
    assert "drain annotation 'drain.tcpmesh.io/echo-v1'" in text
    assert message in text
    assert all(drains_of(vs) == () for vs in config.virtual_services)  # type: ignore[attr-defined]


def test_a_backend_the_route_does_not_name_is_a_located_warning() -> None:
    _, problems = load(*drain_annotation("echo-v3", SINCE, 0.5))
    assert [(p[1], p[2]) for p in problems] == [(ROUTE_LINE, "warning")]
    assert "no backendRef of this route is named 'echo-v3' (echo-v1, echo-v2)" in problems[0][3]


def test_a_backend_name_is_checked() -> None:
    _, problems = load("drain.tcpmesh.io/Echo_V1", '{"since": "2026-12-02T01:00:00Z", "fraction": 0.5}')
    assert [(p[2], "is not a backendRef name" in p[3]) for p in problems] == [("error", True)]


def test_a_tlsroute_drain_reaches_every_generated_virtual_service() -> None:
    """A TLSRoute converts to one VirtualService per hostname: each carries the backend's drain."""
    text = (
        ROUTE.format(key="example.com/note", value="x", w1=1).split(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway"
        )[0]
        + """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: istio
  listeners: [{name: tls, protocol: TLS, port: 9443, tls: {mode: Passthrough}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: secure
  namespace: default
  annotations: {drain.tcpmesh.io/echo-v2: '{"since": "2026-12-02T01:00:00.000Z", "fraction": 0.25}'}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com, b.example.com]
  rules: [{backendRefs: [{name: echo-v1, port: 9000}, {name: echo-v2, port: 9000}]}]
"""
    )
    config, problems = load_config_text(text, "tls.yaml")
    assert problems == []
    generated = [vs for vs in config.virtual_services if vs.meta.name.startswith("secure~tls~")]
    assert len(generated) == 2
    for vs in generated:
        assert drains_of(vs) == (Drain("", SINCE, 0.25, host="echo-v2.default.svc.cluster.local", port=9000),)
