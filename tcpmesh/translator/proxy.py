"""What the translator knows about the Envoy it generates config for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tcpmesh.model.resources import Gateway, Labels, selector_matches

__all__ = ["DEFAULT_GATEWAY_LABELS", "GATEWAY_SERVICE_ANNOTATION", "Proxy", "parse_node_id"]

DEFAULT_GATEWAY_LABELS: Labels = (("app", "istio-ingressgateway"), ("istio", "ingressgateway"))
GATEWAY_SERVICE_ANNOTATION = "internal.istio.io/gateway-service"
"""Set on the Gateways converted from a Gateway API Gateway: they apply only to that Gateway's own proxies."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Proxy:
    """A proxy as istiod sees it: role, identity, namespace and workload labels.

    Node ids follow Istio: ``router~<ip>~<name>.<ns>~<ns>.svc.cluster.local`` for gateways and
    ``sidecar~<ip>~<name>.<ns>~<ns>.svc.cluster.local`` for sidecars.
    """

    role: Literal["gateway", "sidecar"] = "gateway"
    id: str = "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"
    namespace: str = "istio-system"
    labels: Labels = DEFAULT_GATEWAY_LABELS
    ip: str = "127.0.0.1"

    @classmethod
    def gateway(cls, namespace: str | None = None, labels: Labels | None = None) -> Proxy:
        """An ingress gateway pod in `namespace` (istio-system), with istio-ingressgateway's labels by default."""
        ns = namespace or "istio-system"
        return cls(
            role="gateway",
            id=f"router~127.0.0.1~istio-ingressgateway.{ns}~{ns}.svc.cluster.local",
            namespace=ns,
            labels=labels if labels is not None else DEFAULT_GATEWAY_LABELS,
        )

    @classmethod
    def sidecar(cls, namespace: str | None = None, labels: Labels | None = None) -> Proxy:
        """A sidecar of a workload named client in `namespace` (default), with those labels."""
        ns = namespace or "default"
        return cls(role="sidecar", id=f"sidecar~127.0.0.1~client.{ns}~{ns}.svc.cluster.local", namespace=ns,
                   labels=labels or ())  # fmt: skip

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def selected_by(self, selector: Labels) -> bool:
        """A selector matches when every one of its labels is on the proxy (an empty selector matches all)."""
        return selector_matches(selector, self.label_dict())

    def serves(self, gateway: Gateway) -> bool:
        """Whether ``gateway``'s servers are this proxy's. A converted Gateway API Gateway applies to its own
        namespace's proxies only (istiod matches it through the Service of its deployment, which lives in that
        namespace), so same-named Gateways of two namespaces never share a proxy."""
        if not self.selected_by(gateway.selector):
            return False
        return self.namespace == gateway.meta.namespace or all(
            k != GATEWAY_SERVICE_ANNOTATION for k, _ in gateway.meta.annotations
        )


def parse_node_id(node_id: str) -> tuple[Literal["gateway", "sidecar"], str, str, str]:
    """Split an Istio node id into (role, ip, pod name, namespace); unknown forms become a gateway."""
    parts = node_id.split("~")
    if len(parts) == 4:
        role: Literal["gateway", "sidecar"] = "sidecar" if parts[0] == "sidecar" else "gateway"
        pod, _, namespace = parts[2].partition(".")
        return role, parts[1], pod, namespace or "default"
    return "gateway", "", node_id, "default"
