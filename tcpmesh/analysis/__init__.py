"""Cross-resource analysis (``tcpmesh analyze``): what istiod accepts but silently drops, ignores or points at
nothing, in the spirit of ``istioctl analyze``. Pure functions of the config: no I/O.

Each analyzer is a module with one function ``(Context) -> Iterator[Finding]``; codes live in ``codes``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

from tcpmesh.analysis.context import Context, make_context
from tcpmesh.analysis.credentials import analyze_credentials
from tcpmesh.analysis.delegates import analyze_delegates
from tcpmesh.analysis.destination_hosts import analyze_destination_hosts
from tcpmesh.analysis.destination_ports import analyze_destination_ports
from tcpmesh.analysis.destination_rule_hosts import analyze_destination_rule_hosts
from tcpmesh.analysis.destination_subsets import analyze_destination_subsets
from tcpmesh.analysis.findings import Code, Finding, Level
from tcpmesh.analysis.gateway_api import analyze_gateway_api
from tcpmesh.analysis.gateway_conflicts import analyze_gateway_conflicts
from tcpmesh.analysis.gateway_routes import analyze_gateway_routes
from tcpmesh.analysis.gateway_selectors import analyze_gateway_selectors
from tcpmesh.analysis.rule_reachability import analyze_rule_reachability
from tcpmesh.analysis.schema import finding_from_problem
from tcpmesh.analysis.service_workloads import analyze_service_workloads
from tcpmesh.analysis.subset_workloads import analyze_subset_workloads
from tcpmesh.analysis.virtualservice_gateways import analyze_virtualservice_gateways
from tcpmesh.analysis.workload_ports import analyze_workload_ports
from tcpmesh.model.config import Config
from tcpmesh.model.gatewayapi.convert import is_generated
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy

__all__ = ["ANALYZERS", "Code", "Finding", "Level", "analyze", "finding_from_problem"]

Analyzer = Callable[[Context], Iterator[Finding]]

ANALYZERS: tuple[Analyzer, ...] = (
    analyze_virtualservice_gateways,
    analyze_destination_hosts,
    analyze_destination_subsets,
    analyze_destination_ports,
    analyze_subset_workloads,
    analyze_destination_rule_hosts,
    analyze_gateway_selectors,
    analyze_gateway_conflicts,
    analyze_gateway_routes,
    analyze_rule_reachability,
    analyze_service_workloads,
    analyze_workload_ports,
    analyze_credentials,
    analyze_gateway_api,
    analyze_delegates,
)


def analyze(config: Config, options: TranslateOptions, proxies: Sequence[Proxy]) -> list[Finding]:
    """Every finding, sorted by file and line; the same finding reached twice is reported once."""
    # Istio resources converted from Gateway API ones are judged by the Gateway API's own status (gateway_api).
    user = dataclasses.replace(
        config,
        gateways=tuple(g for g in config.gateways if not is_generated(g.meta.annotations)),
        virtual_services=tuple(v for v in config.virtual_services if not is_generated(v.meta.annotations)),
    )
    ctx = make_context(user, options, proxies)
    unique = {f: None for analyzer in ANALYZERS for f in analyzer(ctx)}
    return sorted(unique, key=Finding.sort_key)
