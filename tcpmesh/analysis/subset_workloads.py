"""DestinationRule subsets that select no workloads of their host (TM0201): the subset's cluster has no
endpoints, so connections routed to it fail (istioctl's DestinationRuleSubsetNotSelectPods)."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import SUBSET_SELECTS_NO_WORKLOADS
from tcpmesh.analysis.context import Context, services_for_host
from tcpmesh.analysis.findings import Finding
from tcpmesh.model.resources import Labels, selector_matches
from tcpmesh.translator.names import resolve_short_name
from tcpmesh.translator.services import MeshService

__all__ = ["analyze_subset_workloads"]


def analyze_subset_workloads(ctx: Context) -> Iterator[Finding]:
    for dr in ctx.config.destination_rules:
        services = services_for_host(ctx, resolve_short_name(dr.host, dr.meta.namespace, ctx.domain))
        members = [labels for svc in services for labels in _members(ctx, svc)]
        if not members:
            continue  # no host is TM0202; a service without workloads is TM0501
        names = ", ".join(f"{s.kind} {s.namespace}/{s.name}" for s in services)
        for i, subset in enumerate(dr.subsets):
            if any(_selects(subset.labels, labels) for labels in members):
                continue
            shown = ",".join(f"{k}={v}" for k, v in subset.labels) or "no labels"
            yield SUBSET_SELECTS_NO_WORKLOADS.at(
                dr.meta,
                f"spec.subsets[{i}]",
                f"subset {subset.name!r} ({shown}) selects none of the {len(members)} workload(s) of {names}; "
                "its cluster has no endpoints",
            )


def _members(ctx: Context, svc: MeshService) -> list[Labels]:
    """The labels of each workload behind a service, the way Index.endpoints finds them (before port wiring)."""
    if svc.kind == "ServiceEntry" and svc.inline_endpoints:
        return [e.labels for e in svc.inline_endpoints]
    if svc.selector is not None and (svc.kind == "Service" or svc.selector):
        selector = svc.selector
        return [w.labels for w in ctx.index.workloads if w.namespace == svc.namespace and w.matches(selector)]
    # A DNS ServiceEntry without endpoints: its one endpoint is the host itself, with no labels.
    return [e.labels for p in svc.ports for e in ctx.index.endpoints(svc, p)][:1]


def _selects(selector: Labels, labels: Labels) -> bool:
    return selector_matches(selector, dict(labels))
