"""`tcpmesh analyze` on Gateway API files: the statuses' problems as TM06xx findings at the field that causes
them, and no findings about the Istio resources converted from them."""

from __future__ import annotations

from pathlib import Path

from tcpmesh.analysis import analyze
from tcpmesh.commands.analyze import proxies_from_args
from tcpmesh.model.config import load_config
from tcpmesh.translator.options import TranslateOptions

ROOT = Path(__file__).resolve().parents[2]

BAD = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners:
  - {name: a, protocol: TCP, port: 9000}
  - {name: b, protocol: TLS, port: 9000, tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw, sectionName: nope}, {name: absent}, {name: gw, sectionName: a}]
  rules:
  - backendRefs: [{name: x, port: 1}, {name: y, namespace: other, port: 1}]
"""


def findings(paths: list[Path]) -> list[str]:
    config, problems = load_config(paths)
    assert not [p for p in problems if p.is_error]
    return [str(f) for f in analyze(config, TranslateOptions(), proxies_from_args([]))]


def test_gateway_api_findings(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    found = [f.replace(str(path), "bad.yaml") for f in findings([path])]
    assert found == [
        "bad.yaml:8: Warning [TM0603] Gateway default/gw: spec.listeners[1]: listener b: Accepted ProtocolConflict: "
        "Listener has a conflict with another listener attached to the same Gateway",
        'bad.yaml:14: Warning [TM0601] TCPRoute default/r: spec.parentRefs[0]: NoMatchingParent: sectionName "nope" '
        "not found",
        "bad.yaml:14: Warning [TM0604] TCPRoute default/r: spec.parentRefs[1]: no Gateway default/absent of a class "
        "tcpmesh handles (istio.io/gateway-controller): the route is not attached there",
        "bad.yaml:16: Error [TM0602] TCPRoute default/r: spec.rules[0].backendRefs[0]: BackendNotFound: "
        "backend(x.default.svc.cluster.local) not found",
        "bad.yaml:16: Error [TM0602] TCPRoute default/r: spec.rules[0].backendRefs[1]: RefNotPermitted: backendRef "
        'y/other not accessible to a TCPRoute in namespace "default" (missing a ReferenceGrant?)',
    ]


def test_the_gateway_api_sample_has_no_findings() -> None:
    """Nothing about the converted Gateway (which selects the Gateway's own proxy, not the ingress gateway) or
    its VirtualServices."""
    assert findings([ROOT / "samples/gateway-api-tcp-echo"]) == []
