"""Kinds as kubectl names them: short names, ``<plural>.<group>`` resource names for messages."""

from __future__ import annotations

__all__ = ["KIND_ALIASES", "kubectl_name", "resolve_kind", "resource_name"]

KIND_ALIASES = {
    "gateway": "Gateway", "gateways": "Gateway", "gw": "Gateway",
    "virtualservice": "VirtualService", "virtualservices": "VirtualService", "vs": "VirtualService",
    "destinationrule": "DestinationRule", "destinationrules": "DestinationRule", "dr": "DestinationRule",
    "serviceentry": "ServiceEntry", "serviceentries": "ServiceEntry", "se": "ServiceEntry",
    "workloadentry": "WorkloadEntry", "workloadentries": "WorkloadEntry", "we": "WorkloadEntry",
    "service": "Service", "services": "Service", "svc": "Service",
    "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
    "secret": "Secret", "secrets": "Secret",
}  # fmt: skip
# Gateway API (kubectl's short names; a Gateway API Gateway is stored as KubernetesGateway: see gatewayapi/resources).
_GATEWAY_API = {
    "GatewayClass": ("gatewayclass", "gatewayclasses", "gc"),
    "KubernetesGateway": ("gtw", "kubernetesgateway", "gateway.gateway.networking.k8s.io",
                          "gateways.gateway.networking.k8s.io"),
    "TCPRoute": ("tcproute", "tcproutes"),
    "TLSRoute": ("tlsroute", "tlsroutes"),
    "ReferenceGrant": ("referencegrant", "referencegrants", "refgrant"),
}  # fmt: skip
KIND_ALIASES.update({alias: kind for kind, aliases in _GATEWAY_API.items() for alias in aliases})

_KUBECTL_NAMES = {
    "Gateway": "gateway.networking.istio.io", "VirtualService": "virtualservice.networking.istio.io",
    "DestinationRule": "destinationrule.networking.istio.io", "ServiceEntry": "serviceentry.networking.istio.io",
    "WorkloadEntry": "workloadentry.networking.istio.io", "Service": "service", "Deployment": "deployment.apps",
    "Secret": "secret",
    "GatewayClass": "gatewayclass.gateway.networking.k8s.io", "KubernetesGateway": "gateway.gateway.networking.k8s.io",
    "TCPRoute": "tcproute.gateway.networking.k8s.io", "TLSRoute": "tlsroute.gateway.networking.k8s.io",
    "ReferenceGrant": "referencegrant.gateway.networking.k8s.io",
}  # fmt: skip

_RESOURCES = {
    "Gateway": "gateways.networking.istio.io", "VirtualService": "virtualservices.networking.istio.io",
    "DestinationRule": "destinationrules.networking.istio.io", "ServiceEntry": "serviceentries.networking.istio.io",
    "WorkloadEntry": "workloadentries.networking.istio.io", "Service": "services", "Deployment": "deployments.apps",
    "Secret": "secrets",
    "GatewayClass": "gatewayclasses.gateway.networking.k8s.io",
    "KubernetesGateway": "gateways.gateway.networking.k8s.io", "TCPRoute": "tcproutes.gateway.networking.k8s.io",
    "TLSRoute": "tlsroutes.gateway.networking.k8s.io",
    "ReferenceGrant": "referencegrants.gateway.networking.k8s.io",
}  # fmt: skip


def resolve_kind(text: str) -> str | None:
    return KIND_ALIASES.get(text.lower()) or (text if text in _KUBECTL_NAMES else None)


def kubectl_name(kind: str, name: str) -> str:
    """``virtualservice.networking.istio.io/tcp-echo``, as kubectl prints what it changed."""
    return f"{_KUBECTL_NAMES.get(kind, kind.lower())}/{name}"


def resource_name(kind: str) -> str:
    """``virtualservices.networking.istio.io``, as the API server names a kind in a Conflict."""
    return _RESOURCES.get(kind, kind.lower() + "s")
