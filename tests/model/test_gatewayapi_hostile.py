"""Malformed and oversized Gateway API input: located problems, never an exception, and bounded time."""

from __future__ import annotations

import time

import pytest

from tcpmesh.model.config import load_config_text

HEAD = "apiVersion: gateway.networking.k8s.io/{v}\nkind: {k}\nmetadata: {{name: x}}\n"


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("Gateway", "spec: {gatewayClassName: istio, listeners: [null, 3, {name: a, port: '80', protocol: 7}]}"),
        ("Gateway", "spec: {gatewayClassName: istio, listeners: [{name: a, port: 1, protocol: TLS, tls: 3}]}"),
        ("Gateway", "spec: {gatewayClassName: [x], listeners: {a: 1}}"),
        (
            "Gateway",
            "spec: {gatewayClassName: istio, listeners: [{name: a, port: 1, protocol: TCP, "
            "allowedRoutes: {namespaces: {from: Everywhere, selector: {matchExpressions: []}}, kinds: [7]}}]}",
        ),
        ("TCPRoute", "spec: {parentRefs: [null, {port: -1}], rules: [null, {backendRefs: [{weight: -5, port: 0}]}]}"),
        ("TLSRoute", "spec: {hostnames: [3, null], rules: [{backendRefs: [{name: a, port: 99999999999}]}]}"),
        ("ReferenceGrant", "spec: {from: [{}], to: 5}"),
        ("GatewayClass", "spec: {controllerName: 5}"),
    ],
)
def test_malformed_input_is_reported_not_raised(kind: str, spec: str) -> None:
    version = "v1alpha2" if kind == "TCPRoute" else "v1"
    config, problems = load_config_text(HEAD.format(v=version, k=kind) + spec, "bad.yaml")
    assert any(p.is_error for p in problems)
    assert all(p.file == "bad.yaml" and p.line for p in problems)
    config.gateway_api()  # the conversion of whatever parsed does not raise either


def test_oversized_lists_are_refused_quickly() -> None:
    listeners = ", ".join(f"{{name: l{i}, protocol: TCP, port: {i % 60000 + 1}}}" for i in range(3000))
    refs = ", ".join(f"{{name: gw{i}}}" for i in range(3000))
    text = HEAD.format(v="v1", k="Gateway") + f"spec: {{gatewayClassName: istio, listeners: [{listeners}]}}\n---\n"
    text += HEAD.format(v="v1", k="TCPRoute") + f"spec: {{parentRefs: [{refs}], rules: [{{backendRefs: []}}]}}\n"
    start = time.monotonic()
    _, problems = load_config_text(text, "big.yaml")
    assert time.monotonic() - start < 10
    messages = {p.message for p in problems}
    assert "Too many: 3000: must have at most 64 items" in messages
    assert "Too many: 3000: must have at most 32 items" in messages
