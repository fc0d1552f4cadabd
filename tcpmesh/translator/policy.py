"""Which DestinationRule traffic policy applies to a cluster, with istiod's precedence.

pilot/pkg/networking/core/cluster_builder.go applyDestinationRule and util.MergeSubsetTrafficPolicy:
the top-level policy, replaced whole by a matching portLevelSettings entry; then a subset's policy
(after its own port-level match) overrides block by block.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpmesh.model.resources import (
    ClientTLS,
    ConnectionPool,
    DestinationRule,
    LoadBalancer,
    OutlierDetection,
    RetryBudget,
    TrafficPolicy,
)

__all__ = ["EffectivePolicy", "effective_policy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EffectivePolicy:
    connection_pool: ConnectionPool | None = None
    load_balancer: LoadBalancer | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLS | None = None
    proxy_protocol_version: str = ""
    retry_budget: RetryBudget | None = None


def _for_port(policy: TrafficPolicy | None, port: int) -> tuple[EffectivePolicy | None, bool]:
    if policy is None:
        return None, False
    for pls in policy.port_level_settings:
        if pls.port == port:
            # A port-level entry replaces the four blocks wholesale; tunnel/proxyProtocol/retryBudget are dropped.
            return EffectivePolicy(
                connection_pool=pls.connection_pool,
                load_balancer=pls.load_balancer,
                outlier_detection=pls.outlier_detection,
                tls=pls.tls,
            ), True
    return EffectivePolicy(
        connection_pool=policy.connection_pool,
        load_balancer=policy.load_balancer,
        outlier_detection=policy.outlier_detection,
        tls=policy.tls,
        proxy_protocol_version=policy.proxy_protocol_version,
        retry_budget=policy.retry_budget,
    ), False


def effective_policy(rule: DestinationRule | None, port: int, subset: str = "") -> EffectivePolicy:
    if rule is None:
        return EffectivePolicy()
    base, _ = _for_port(rule.traffic_policy, port)
    base = base or EffectivePolicy()
    if not subset:
        return base
    sub = next((s for s in rule.subsets if s.name == subset), None)
    if sub is None or sub.traffic_policy is None:
        return base
    own, port_matched = _for_port(sub.traffic_policy, port)
    if own is None:
        return base
    if port_matched:
        return EffectivePolicy(
            connection_pool=own.connection_pool,
            load_balancer=own.load_balancer,
            outlier_detection=own.outlier_detection,
            tls=own.tls,
            proxy_protocol_version=own.proxy_protocol_version or base.proxy_protocol_version,
            retry_budget=own.retry_budget or base.retry_budget,
        )
    return EffectivePolicy(
        connection_pool=own.connection_pool or base.connection_pool,
        load_balancer=own.load_balancer or base.load_balancer,
        outlier_detection=own.outlier_detection or base.outlier_detection,
        tls=own.tls or base.tls,
        proxy_protocol_version=own.proxy_protocol_version or base.proxy_protocol_version,
        retry_budget=own.retry_budget or base.retry_budget,
    )
