"""istiod's admission (webhook) rules for the kinds tcpmesh reads.

Messages follow istio/istio ``pkg/config/validation`` word for word where a rule exists there; Kubernetes kinds
follow the API server. Each kind's rules live in a sibling module.
"""

from __future__ import annotations

from tcpmesh.model.gatewayapi.resources import GatewayClass, KubeGateway, L4Route, ReferenceGrant
from tcpmesh.model.gatewayapi.validate import validate_gateway_api
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import (
    Deployment,
    DestinationRule,
    Gateway,
    Resource,
    Secret,
    Service,
    ServiceEntry,
    VirtualService,
    WorkloadEntry,
)
from tcpmesh.model.validate_destination import validate_destination_rule
from tcpmesh.model.validate_gateway import validate_gateway
from tcpmesh.model.validate_kube import validate_deployment, validate_service
from tcpmesh.model.validate_routes import validate_virtual_service
from tcpmesh.model.validate_secret import validate_secret
from tcpmesh.model.validate_serviceentry import validate_service_entry, validate_workload_entry

__all__ = ["validate_resource"]


def validate_resource(resource: Resource) -> list[Problem]:
    """Every rule violation of one resource, errors and warnings."""
    match resource:
        case Gateway():
            return validate_gateway(resource)
        case VirtualService():
            return validate_virtual_service(resource)
        case DestinationRule():
            return validate_destination_rule(resource)
        case ServiceEntry():
            return validate_service_entry(resource)
        case WorkloadEntry():
            return validate_workload_entry(resource)
        case Service():
            return validate_service(resource)
        case Deployment():
            return validate_deployment(resource)
        case Secret():
            return validate_secret(resource)
        case GatewayClass() | KubeGateway() | L4Route() | ReferenceGrant():
            return validate_gateway_api(resource)
    return []
