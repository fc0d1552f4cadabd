"""The Gateway API CRDs' rules (gateway-api v1.6 standard and experimental channels): each violation is one
problem naming the file, line, resource and field, in the API server's words; nothing raises."""

from __future__ import annotations

import pytest

from tcpmesh.model.config import load_config_text

GW = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners:
"""


def problems(text: str) -> list[str]:
    _, found = load_config_text(text, "in.yaml")
    return [str(p) for p in found if p.is_error]


@pytest.mark.parametrize(
    ("listeners", "expected"),
    [
        (
            "  - {name: a, protocol: TCP, port: 1, tls: {mode: Passthrough}}",
            "in.yaml:7: Gateway default/gw: spec.listeners[0].tls: tls must not be specified for protocols "
            "['HTTP', 'TCP', 'UDP']",
        ),
        (
            "  - {name: a, protocol: TLS, port: 1}",
            "in.yaml:7: Gateway default/gw: spec.listeners[0]: tls mode must be set for protocol TLS",
        ),
        (
            "  - {name: a, protocol: TLS, port: 1, tls: {certificateRefs: [{name: c}]}}",
            "in.yaml:7: Gateway default/gw: spec.listeners[0].tls: tls mode must be set for protocol TLS",
        ),
        (
            "  - {name: a, protocol: TCP, port: 1, hostname: a.example.com}",
            "in.yaml:7: Gateway default/gw: spec.listeners[0].hostname: hostname must not be specified for "
            "protocols ['TCP', 'UDP']",
        ),
        (
            "  - {name: a, protocol: TLS, port: 1, tls: {mode: Terminate}}",
            "in.yaml:7: Gateway default/gw: spec.listeners[0].tls: certificateRefs or options must be specified "
            "when mode is Terminate",
        ),
        (
            "  - {name: a, protocol: HTTPS, port: 1, tls: {mode: Passthrough}}",
            "in.yaml:7: Gateway default/gw: spec.listeners[0].tls.mode: tls mode must be Terminate for protocol HTTPS",
        ),
        (
            "  - {name: a, protocol: TCP, port: 1}\n  - {name: a, protocol: TCP, port: 2}",
            "in.yaml:8: Gateway default/gw: spec.listeners[1].name: Listener name must be unique within the Gateway",
        ),
        (
            "  - {name: a, protocol: TCP, port: 1}\n  - {name: b, protocol: TCP, port: 1}",
            "in.yaml:8: Gateway default/gw: spec.listeners[1]: Combination of port, protocol and hostname must be "
            "unique for each listener",
        ),
        (
            "  - {name: a, protocol: TCP, port: 0}",
            "in.yaml:7: Gateway default/gw: spec.listeners[0].port: Invalid value: 0: should be greater than or "
            "equal to 1",
        ),
        (
            "  - {name: A_b, protocol: TCP, port: 1}",
            'in.yaml:7: Gateway default/gw: spec.listeners[0].name: Invalid value: "A_b": should match '
            "'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'",
        ),
        (
            "  - {name: a, protocol: TCP, port: 1, prot: x}",
            "in.yaml:7: Gateway default/gw: spec.listeners[0].prot: unknown field; did you mean 'port'?",
        ),
    ],
)
def test_gateway_listener_rules(listeners: str, expected: str) -> None:
    assert expected in problems(GW + listeners + "\n")


def test_gateway_needs_listeners_and_a_class() -> None:
    found = problems("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {}\n")
    assert "in.yaml:4: Gateway default/gw: spec.gatewayClassName: required field is missing" in found
    assert "in.yaml:4: Gateway default/gw: spec.listeners: required field is missing" in found


ROUTE = """apiVersion: gateway.networking.k8s.io/{version}
kind: {kind}
metadata: {{name: r}}
spec:
  parentRefs: {parents}{hostnames}
  rules:
{rules}
"""


def route(
    rules: str,
    *,
    kind: str = "TCPRoute",
    version: str = "v1",
    parents: str = "[{name: gw}]",
    hostnames: str = "",
) -> list[str]:
    hosts = f"\n  hostnames: {hostnames}" if hostnames else ""
    return problems(ROUTE.format(version=version, kind=kind, parents=parents, hostnames=hosts, rules=rules))


def test_route_rules() -> None:
    two = "  - backendRefs: [{name: a, port: 1}]\n  - backendRefs: [{name: b, port: 1}]"
    assert "in.yaml:6: TCPRoute default/r: spec.rules: Too many: 2: must have at most 1 items" in route(two)
    assert not route(two, version="v1alpha2")  # v1alpha2 allows up to 16 rules
    assert "in.yaml:7: TCPRoute default/r: spec.rules[0].backendRefs: Required value" in route("  - name: x")
    many = "  - backendRefs: [" + ", ".join(f"{{name: b{i}, port: 1}}" for i in range(17)) + "]"
    assert "in.yaml:7: TCPRoute default/r: spec.rules[0].backendRefs: Too many: 17: must have at most 16 items" in (
        route(many)
    )
    assert "in.yaml:7: TCPRoute default/r: spec.rules[0].backendRefs[0]: Must have port for Service reference" in (
        route("  - backendRefs: [{name: a}]")
    )
    assert (
        "in.yaml:7: TCPRoute default/r: spec.rules[0].backendRefs[0].weight: Invalid value: 1000001: should be "
        "less than or equal to 1000000"
    ) in route("  - backendRefs: [{name: a, port: 1, weight: 1000001}]")
    assert (
        "in.yaml:7: TCPRoute default/r: spec.rules[0].backendRefs[0].port: Invalid value: 70000: should be less "
        "than or equal to 65535"
    ) in route("  - backendRefs: [{name: a, port: 70000}]")


def test_parent_refs_cel() -> None:
    rules = "  - backendRefs: [{name: a, port: 1}]"
    assert (
        "in.yaml:5: TCPRoute default/r: spec.parentRefs[0]: sectionName or port must be specified when parentRefs "
        "includes 2 or more references to the same parent"
    ) in route(rules, parents="[{name: gw}, {name: gw, sectionName: a}]")
    assert (
        "in.yaml:5: TCPRoute default/r: spec.parentRefs[0]: sectionName or port must be unique when parentRefs "
        "includes 2 or more references to the same parent"
    ) in route(rules, parents="[{name: gw, sectionName: a}, {name: gw, sectionName: a}]")
    assert not route(rules, parents="[{name: gw, sectionName: a}, {name: gw, sectionName: b}, {name: other}]")


def test_tlsroute_hostnames() -> None:
    rules = "  - backendRefs: [{name: a, port: 1}]"
    assert "in.yaml:4: TLSRoute default/r: spec.hostnames: Required value" in route(rules, kind="TLSRoute")
    assert not route(rules, kind="TLSRoute", version="v1alpha2")  # optional before v1
    found = route(rules, kind="TLSRoute", hostnames='["10.0.0.1", "a.*.com", "Bad_Name", "*.example.com"]')
    assert found == [
        "in.yaml:6: TLSRoute default/r: spec.hostnames[0]: Hostnames cannot contain an IP",
        "in.yaml:6: TLSRoute default/r: spec.hostnames[1]: Wildcards on hostnames must be the first label, and the "
        "rest of hostname must be valid based on RFC-1123",
        "in.yaml:6: TLSRoute default/r: spec.hostnames[2]: Hostnames must be valid based on RFC-1123",
    ]


def test_api_versions_and_reference_grant() -> None:
    found = problems(
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: TCPRoute\nmetadata: {name: r}\nspec: {rules: []}\n"
    )
    assert found == [
        "in.yaml:1: TCPRoute default/r: apiVersion: unsupported apiVersion 'gateway.networking.k8s.io/v1beta1' "
        "for TCPRoute; expected one of gateway.networking.k8s.io/v1, gateway.networking.k8s.io/v1alpha2"
    ]
    found = problems(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {name: g}\n"
        "spec:\n  from: []\n  to: [{group: '', kind: Service}]\n"
    )
    assert found == ["in.yaml:5: ReferenceGrant default/g: spec.from: Required value"]
    found = problems(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c}\n"
        "spec: {controllerName: no-slash}\n"
    )
    assert len(found) == 1
    assert found[0].startswith('in.yaml:4: GatewayClass default/c: spec.controllerName: Invalid value: "no-slash"')


def test_istio_and_gateway_api_gateways_of_one_name_coexist() -> None:
    text = (
        GW
        + "  - {name: a, protocol: TCP, port: 1}\n---\n"
        + (
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
            "spec:\n  selector: {istio: ingressgateway}\n  servers: [{port: {number: 2, name: tcp, protocol: TCP}, "
            "hosts: ['*']}]\n"
        )
    )
    config, found = load_config_text(text, "in.yaml")
    assert not found  # no "replaces" warning: different kinds
    assert [g.meta.name for g in config.kube_gateways] == ["gw"]
    assert sorted(g.meta.name for g in config.gateways) == ["gw", "gw~istio-autogenerated-k8s-gateway~a"]
