"""Services and ServiceEntries whose selector matches no workload (TM0501): their clusters have no endpoints."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import SERVICE_SELECTS_NO_WORKLOADS
from tcpmesh.analysis.context import Context
from tcpmesh.analysis.findings import Finding
from tcpmesh.model.resources import Labels, Meta

__all__ = ["analyze_service_workloads"]


def analyze_service_workloads(ctx: Context) -> Iterator[Finding]:
    for svc in ctx.config.services:
        # No selector (or an empty one) means endpoints are managed by hand: nothing to check.
        if svc.selector and not svc.external_name:
            yield from _check(ctx, svc.meta, svc.selector, "spec.selector")
    for se in ctx.config.service_entries:
        if se.workload_selector:
            yield from _check(ctx, se.meta, se.workload_selector, "spec.workloadSelector")


def _check(ctx: Context, meta: Meta, selector: Labels, path: str) -> Iterator[Finding]:
    if any(w.namespace == meta.namespace and w.matches(selector) for w in ctx.index.workloads):
        return
    labels = ",".join(f"{k}={v}" for k, v in selector)
    yield SERVICE_SELECTS_NO_WORKLOADS.at(
        meta,
        path,
        f"selector {labels} matches no Deployment pod or WorkloadEntry in namespace {meta.namespace}; "
        "the service has no endpoints",
    )
