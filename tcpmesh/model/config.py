"""The config snapshot: every accepted resource at one moment, as one immutable value."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tcpmesh.model.gatewayapi.convert import Conversion, convert, is_generated
from tcpmesh.model.gatewayapi.resources import GatewayClass, KubeGateway, L4Route, ReferenceGrant
from tcpmesh.model.parse import parse_document
from tcpmesh.model.problems import Problem, Severity
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
from tcpmesh.model.validate import validate_resource
from tcpmesh.model.yamlsource import Document, load_documents, load_yaml_text

__all__ = [
    "Config",
    "load_config",
    "load_config_text",
    "merge_resources",
    "parse_and_validate",
    "parse_documents",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    gateways: tuple[Gateway, ...] = ()
    virtual_services: tuple[VirtualService, ...] = ()
    destination_rules: tuple[DestinationRule, ...] = ()
    service_entries: tuple[ServiceEntry, ...] = ()
    workload_entries: tuple[WorkloadEntry, ...] = ()
    services: tuple[Service, ...] = ()
    deployments: tuple[Deployment, ...] = ()
    secrets: tuple[Secret, ...] = ()
    # Gateway API: kept as written; ``of`` adds their conversion to ``gateways`` and ``virtual_services``.
    gateway_classes: tuple[GatewayClass, ...] = ()
    kube_gateways: tuple[KubeGateway, ...] = ()
    l4_routes: tuple[L4Route, ...] = ()
    """TCPRoutes and TLSRoutes, in creation order."""
    reference_grants: tuple[ReferenceGrant, ...] = ()

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Config:
        """Group resources by kind, each kind in input order (istiod's creation-time order)."""
        by_type: dict[type, list[Resource]] = {}
        for res in resources:
            by_type.setdefault(type(res), []).append(res)

        def pick(t: type) -> tuple[Resource, ...]:
            return tuple(sorted(by_type.get(t, ()), key=lambda r: (r.meta.order, r.meta.namespace, r.meta.name)))

        gateway_api = {
            "gateway_classes": pick(GatewayClass),
            "kube_gateways": pick(KubeGateway),
            "l4_routes": pick(L4Route),
            "reference_grants": pick(ReferenceGrant),
        }
        conversion = convert(
            gateway_api["gateway_classes"],  # type: ignore[arg-type]
            gateway_api["kube_gateways"],  # type: ignore[arg-type]
            gateway_api["l4_routes"],  # type: ignore[arg-type]
            gateway_api["reference_grants"],  # type: ignore[arg-type]
            pick(Service),  # type: ignore[arg-type]
            pick(ServiceEntry),  # type: ignore[arg-type]
            secrets=frozenset((s.meta.namespace, s.meta.name) for s in by_type.get(Secret, ())),
        )
        if conversion.gateways or conversion.virtual_services:
            by_type.setdefault(Gateway, []).extend(conversion.gateways)
            by_type.setdefault(VirtualService, []).extend(conversion.virtual_services)
        return cls(
            gateways=pick(Gateway),  # type: ignore[arg-type]
            virtual_services=pick(VirtualService),  # type: ignore[arg-type]
            destination_rules=pick(DestinationRule),  # type: ignore[arg-type]
            service_entries=pick(ServiceEntry),  # type: ignore[arg-type]
            workload_entries=pick(WorkloadEntry),  # type: ignore[arg-type]
            services=pick(Service),  # type: ignore[arg-type]
            deployments=pick(Deployment),  # type: ignore[arg-type]
            secrets=pick(Secret),  # type: ignore[arg-type]
            **gateway_api,  # type: ignore[arg-type]
        )

    def resources(self) -> tuple[Resource, ...]:
        """The resources as given (not the Istio resources converted from Gateway API ones)."""
        return (
            *(g for g in self.gateways if not is_generated(g.meta.annotations)),
            *(v for v in self.virtual_services if not is_generated(v.meta.annotations)),
            *self.destination_rules,
            *self.service_entries,
            *self.workload_entries,
            *self.services,
            *self.deployments,
            *self.secrets,
            *self.gateway_classes,
            *self.kube_gateways,
            *self.l4_routes,
            *self.reference_grants,
        )

    def secret_keys(self) -> frozenset[tuple[str, str]]:
        """(namespace, name) of every Secret: what Gateway API certificateRefs may name."""
        return frozenset((s.meta.namespace, s.meta.name) for s in self.secrets)

    def gateway_api(self) -> Conversion:
        """The Gateway API conversion of this config, with every Gateway API resource's status."""
        return convert(
            self.gateway_classes,
            self.kube_gateways,
            self.l4_routes,
            self.reference_grants,
            self.services,
            self.service_entries,
            secrets=self.secret_keys(),
        )

    def __len__(self) -> int:
        """How many resources were given (those converted from Gateway API ones are not counted), without
        building `resources()`: a reload checks the size of 50 001 resources on every edit."""
        total = sum(len(getattr(self, f)) for f in self.__dataclass_fields__)
        if self.kube_gateways or self.l4_routes:  # only Gateway API resources make generated ones
            total -= sum(1 for g in self.gateways if is_generated(g.meta.annotations))
            total -= sum(1 for v in self.virtual_services if is_generated(v.meta.annotations))
        return total


def parse_documents(
    documents: Sequence[Document], default_namespace: str = "default", first_order: int = 0
) -> tuple[list[Resource], list[Problem]]:
    """Parse and validate documents; a later resource with the same kind, namespace and name wins."""
    parsed, problems = parse_and_validate(documents, default_namespace, first_order)
    resources, replaced = merge_resources([parsed])
    return resources, problems + replaced


def parse_and_validate(
    documents: Sequence[Document], default_namespace: str = "default", first_order: int = 0
) -> tuple[list[Resource], list[Problem]]:
    """Every resource of the documents with its own problems, in input order; ``first_order`` places them
    after the resources of earlier files (order stands in for creationTimestamp)."""
    resources: list[Resource] = []
    problems: list[Problem] = []
    for index, doc in enumerate(documents):
        parsed, probs = parse_document(doc, first_order + index * 10_000, default_namespace)
        problems.extend(probs)
        for res in parsed:
            problems.extend(validate_resource(res))
            resources.append(res)
    return resources, problems


def merge_resources(groups: Sequence[Sequence[Resource]]) -> tuple[list[Resource], list[Problem]]:
    """Resources of several inputs in order; a later one with the same kind, namespace and name replaces the
    earlier one, as `kubectl apply -f a -f b` would, with a warning."""
    merged: dict[tuple[str, str, str], Resource] = {}
    problems: list[Problem] = []
    for group in groups:
        for res in group:
            key = (res.meta.kind, res.meta.namespace, res.meta.name)
            first = merged.pop(key, None)
            if first is not None:
                src = first.meta.source
                problems.append(
                    Problem(
                        message=f"replaces {res.meta.kind} {res.meta.key} defined at {src.file}:{src.line}",
                        file=res.meta.source.file,
                        line=res.meta.source.line,
                        kind=res.meta.kind,
                        namespace=res.meta.namespace,
                        name=res.meta.name,
                        severity=Severity.WARNING,
                    )
                )
            merged[key] = res
    return list(merged.values()), problems


def load_config(paths: Sequence[Path], default_namespace: str = "default") -> tuple[Config, list[Problem]]:
    """Read, parse and validate files/directories. Resources with errors are still returned; callers that
    serve config must refuse the whole change when any problem is an error."""
    documents, problems = load_documents(list(paths))
    resources, more = parse_documents(documents, default_namespace)
    return Config.of(resources), problems + more


def load_config_text(
    text: str, file: str = "<input>", default_namespace: str = "default"
) -> tuple[Config, list[Problem]]:
    documents, problems = load_yaml_text(text, file)
    resources, more = parse_documents(documents, default_namespace)
    return Config.of(resources), problems + more
