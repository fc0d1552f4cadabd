"""The config snapshot: every accepted resource at one moment, as one immutable value."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcpmesh.model.gatewayapi.convert import Conversion, convert, is_generated
from tcpmesh.model.gatewayapi.resources import GatewayClass, KubeGateway, L4Route, ReferenceGrant
from tcpmesh.model.parse import parse_document
from tcpmesh.model.pickled import pickled_by_slots
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
    "NO_LINEAGE",
    "RESOURCE_FIELDS",
    "Config",
    "Lineage",
    "load_config",
    "load_config_text",
    "merge_resources",
    "parse_and_validate",
    "parse_documents",
]


LINEAGE_KEPT = 4
"""Earlier tuples a Lineage keeps per field (an edit since each of them)."""

LINEAGE_POSITIONS = 64
"""Positions a Lineage keeps per earlier tuple: past that many, a consumer compares the tuples instead."""

Edit = tuple[tuple[Any, ...], tuple[Any, ...], tuple[int, ...]]
"""(earlier tuple, later tuple, the positions where they hold other resources)."""


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class Lineage:
    """How a Config's resource tuples came from earlier ones when resources were only replaced in place: per
    field, edits (earlier tuple, this config's tuple, the positions that hold another resource), every other
    position holding the very same object. Whoever holds an earlier tuple learns what changed without a pass
    over 10 000 resources (each such pass costs ~0.3-0.6 ms, and an edit made five of them)."""

    edits: Mapping[str, tuple[Edit, ...]]

    def positions(self, old: Sequence[Any], new: Sequence[Any]) -> tuple[int, ...] | None:
        """Where `new` holds another object than `old` (both of one field), or None when not known."""
        if old is new:
            return ()
        for edits in self.edits.values():
            for base, target, positions in edits:
                if base is old and target is new:
                    return positions
        return None

    def then(self, name: str, old: tuple[Any, ...], new: tuple[Any, ...], positions: Iterable[int]) -> Lineage:
        """This lineage after field `name` went from `old` to `new` by replacing `positions`; the edits that led
        to `old` are extended to `new` while they stay small (LINEAGE_KEPT, LINEAGE_POSITIONS)."""
        moved = tuple(sorted(set(positions)))
        kept: list[Edit] = [(old, new, moved)]
        for base, target, before in self.edits.get(name, ()):
            if target is old and len(kept) < LINEAGE_KEPT:
                union = tuple(sorted({*before, *moved}))
                if len(union) <= LINEAGE_POSITIONS:
                    kept.append((base, new, union))
        return Lineage({**self.edits, name: tuple(kept)})

    def without(self, name: str) -> Lineage:
        """This lineage, knowing nothing of field `name` (it changed otherwise than in place)."""
        if name not in self.edits:
            return self
        return Lineage({k: v for k, v in self.edits.items() if k != name})


NO_LINEAGE = Lineage({})


_CREATION_ORDER = operator.attrgetter("meta.order", "meta.namespace", "meta.name")
"""istiod's order of one kind's resources (creation time, then namespace and name), read in C: a start sorts the
50 000 resources of 10 000 services, twice (the serving process and the translation worker)."""


@pickled_by_slots
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
    lineage: Lineage = field(default=NO_LINEAGE, compare=False, repr=False)
    """Where the tuples above came from by in-place edits (the store's view knows): a hint, never content."""

    def moved(self, old: Sequence[Any], new: Sequence[Any]) -> tuple[int, ...] | None:
        """Positions where `new` (a field of this config) holds another object than `old`: from the lineage,
        or None when it does not know (then compare them)."""
        return self.lineage.positions(old, new)

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Config:
        """Group resources by kind, each kind in input order (istiod's creation-time order)."""
        by_type: dict[type, list[Resource]] = {}
        for res in resources:
            by_type.setdefault(type(res), []).append(res)

        def pick(t: type) -> tuple[Resource, ...]:
            return tuple(sorted(by_type.get(t, ()), key=_CREATION_ORDER))

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
            services := pick(Service),  # type: ignore[arg-type]
            service_entries := pick(ServiceEntry),  # type: ignore[arg-type]
            secrets=frozenset((s.meta.namespace, s.meta.name) for s in by_type.get(Secret, ())),
        )
        if conversion.gateways or conversion.virtual_services:
            by_type.setdefault(Gateway, []).extend(conversion.gateways)
            by_type.setdefault(VirtualService, []).extend(conversion.virtual_services)
        return cls(
            gateways=pick(Gateway),  # type: ignore[arg-type]
            virtual_services=pick(VirtualService),  # type: ignore[arg-type]
            destination_rules=pick(DestinationRule),  # type: ignore[arg-type]
            service_entries=service_entries,  # type: ignore[arg-type]
            workload_entries=pick(WorkloadEntry),  # type: ignore[arg-type]
            services=services,  # type: ignore[arg-type]
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
        total = sum(len(getattr(self, f)) for f in RESOURCE_FIELDS)
        if self.kube_gateways or self.l4_routes:  # only Gateway API resources make generated ones
            total -= sum(1 for g in self.gateways if is_generated(g.meta.annotations))
            total -= sum(1 for v in self.virtual_services if is_generated(v.meta.annotations))
        return total


RESOURCE_FIELDS: tuple[str, ...] = tuple(f for f in Config.__dataclass_fields__ if f != "lineage")
"""The Config fields that hold resources (every field but `lineage`)."""


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
