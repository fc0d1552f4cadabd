"""A frozen lookup of the config, built once per snapshot, so builders are lookups (istiod's PushContext)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tcpmesh.model.config import Config
from tcpmesh.model.drain import Drain
from tcpmesh.model.resources import DestinationRule, Gateway, VirtualService, WorkloadSpec, selector_matches
from tcpmesh.translator.drain import DrainTarget, drain_for, drain_targets
from tcpmesh.translator.names import resolve_gateway_name, resolve_short_name
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.services import MeshService, SvcPort, services_of
from tcpmesh.translator.workloads import Workload, workloads_of

__all__ = ["Endpoint", "Index", "build_index", "host_matches_pattern"]


class Endpoint(NamedTuple):
    """One endpoint of a service port. A NamedTuple, not a frozen dataclass: tens of thousands are made per
    translation, and a tuple is built several times faster."""

    address: str
    port: int
    labels: tuple[tuple[str, str], ...]
    weight: int = 1
    locality: str = ""
    workload: str = ""
    namespace: str = ""

    def matches(self, selector: tuple[tuple[str, str], ...]) -> bool:
        return selector_matches(selector, dict(self.labels))


def host_matches_pattern(pattern: str, host: str) -> bool:
    """Istio host matching: exact, ``*`` for all, or ``*.suffix`` for any name ending in ``.suffix``."""
    if pattern == "*" or pattern == host:
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return False


@dataclass(frozen=True, kw_only=True, eq=False)
class Index:
    config: Config
    options: TranslateOptions
    services: tuple[MeshService, ...]
    workloads: tuple[Workload, ...]
    _by_host: dict[str, MeshService] = field(default_factory=dict)
    _rules_by_host: dict[str, list[DestinationRule]] = field(default_factory=dict)
    _wildcard_rules: list[tuple[str, DestinationRule]] = field(default_factory=list)
    _vs_gateways: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _vs_by_gateway: dict[str, list[VirtualService]] = field(default_factory=dict)
    _workloads_by_label: dict[tuple[str, str, str], list[Workload]] = field(default_factory=dict)
    _workloads_by_namespace: dict[str, list[Workload]] = field(default_factory=dict)
    _vs_by_gateway_port: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    """Memo of virtual_services_for_gateway(key, port): a pure function of the config."""
    _drains: dict[str, tuple[DrainTarget, ...]] = field(default_factory=dict)
    """What the drains of each VirtualService that has any cover, by ``ns/name``."""
    _prototypes: dict[str, Any] = field(default_factory=dict)
    """Memo of message prototypes that builders copy (``CopyFrom``) and never change: pure functions of
    ``options``, which every index derived from this one keeps."""

    def prototype(self, key: str, build: Callable[[TranslateOptions], Any]) -> Any:
        """The prototype ``build(options)`` under ``key``, built once per index; copy it, never change it."""
        found = self._prototypes.get(key)
        if found is None:
            found = self._prototypes.setdefault(key, build(self.options))
        return found

    def drain(self, host: str, subset: str, port: int) -> Drain | None:
        """The drain of cluster ``outbound|port|subset|host``, if any."""
        return drain_for(self._drains.values(), host, subset, port) if self._drains else None

    def service(self, hostname: str) -> MeshService | None:
        return self._by_host.get(hostname)

    def destination_rule(self, hostname: str, proxy_namespace: str) -> DestinationRule | None:
        """The DR for a host: exact host before wildcard, the proxy's namespace first, then the oldest."""
        exact = self._rules_by_host.get(hostname)
        candidates = exact or [dr for pattern, dr in self._wildcard_rules if host_matches_pattern(pattern, hostname)]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        local = [dr for dr in candidates if dr.meta.namespace == proxy_namespace]
        return (local or candidates)[0]

    def vs_gateways(self, vs: VirtualService) -> tuple[str, ...]:
        """Resolved ``ns/name`` gateways of a VirtualService; none written means ``mesh``."""
        return self._vs_gateways[vs.meta.key]

    def gateway_key(self, gateway: Gateway) -> str:
        return gateway.meta.key

    def virtual_services_for_gateway(self, gateway_key: str, port: int | None = None) -> list[VirtualService]:
        """VirtualServices whose top-level ``gateways`` name this gateway, in creation order.

        With ``port``, only those with a tcp/tls rule that can match it (a match on that port, on port 0, or no
        match at all): with thousands of VirtualServices on one gateway this keeps each server a lookup.
        """
        bound = self._vs_by_gateway.get(gateway_key, [])
        if port is None:
            return bound
        by_port = self._vs_by_gateway_port.get(gateway_key)
        if by_port is None:
            by_port = self._vs_by_gateway_port[gateway_key] = _index_by_port(bound)
        any_port = by_port.get(0, [])
        exact = by_port.get(port, [])
        if not any_port:
            return [bound[i] for i in exact]
        return [bound[i] for i in sorted(set(exact).union(any_port))]

    def _candidates(self, namespace: str, selector: tuple[tuple[str, str], ...]) -> list[Workload]:
        """Workloads of a namespace that may match ``selector``: the bucket of its first label, or all."""
        if not selector:
            return self._workloads_by_namespace.get(namespace, [])
        key, value = selector[0]
        return self._workloads_by_label.get((namespace, key, value), [])

    def endpoints(self, service: MeshService, port: SvcPort) -> tuple[Endpoint, ...]:
        """The endpoints of one service port (before subset filtering), sorted by address and port."""
        out: list[Endpoint] = []
        if service.kind == "ServiceEntry" and service.inline_endpoints:
            out.extend(_inline_endpoint(e, port) for e in service.inline_endpoints)
        elif service.selector is not None and (service.kind == "Service" or service.selector):
            selector = service.selector
            # The bucket of the selector's first label holds only workloads carrying it: check the others.
            rest = selector[1:]
            for w in self._candidates(service.namespace, selector):
                if rest and not w.matches(rest):
                    continue
                target = _workload_port(w, port)
                if target:
                    out.append(
                        Endpoint(
                            address=w.address,
                            port=target,
                            labels=w.labels,
                            weight=w.weight or 1,
                            locality=w.locality,
                            workload=w.name,
                            namespace=w.namespace,
                        )
                    )
        elif service.kind == "ServiceEntry" and service.resolution in ("DNS", "DNS_ROUND_ROBIN"):
            # A DNS ServiceEntry without endpoints resolves the host itself.
            target = port.target_port if isinstance(port.target_port, int) and port.target_port else port.number
            out.append(Endpoint(address=service.hostname, port=target, labels=()))
        return tuple(sorted(out, key=lambda e: (e.address, e.port)))


def _index_by_port(bound: list[VirtualService]) -> dict[int, list[int]]:
    """Positions of the VirtualServices by the ports their rules can match; 0 stands for any port."""
    out: dict[int, list[int]] = {}
    for i, vs in enumerate(bound):
        ports: set[int] = set()
        for matches in [r.match for r in vs.tcp] + [r.match for r in vs.tls]:
            if not matches:
                ports.add(0)
            ports.update(m.port for m in matches)
        for port in sorted(ports):
            out.setdefault(port, []).append(i)
    return out


def _inline_endpoint(spec: WorkloadSpec, port: SvcPort) -> Endpoint:
    named = dict(spec.ports)
    target = named.get(port.name) or (port.target_port if isinstance(port.target_port, int) else 0) or port.number
    return Endpoint(
        address=spec.address, port=target, labels=spec.labels, weight=spec.weight or 1, locality=spec.locality
    )


def _workload_port(w: Workload, port: SvcPort) -> int:
    """The port a workload serves a service port on: WorkloadEntry ports[name], targetPort, then the port."""
    if not w.named_ports:  # the common case, without building the dict
        target = port.target_port
        return 0 if isinstance(target, str) else target or port.number
    named = dict(w.named_ports)
    if w.kind == "WorkloadEntry" and port.name in named:
        return named[port.name]
    if isinstance(port.target_port, str):
        return named.get(port.target_port, 0)
    return port.target_port or port.number


def build_index(config: Config, options: TranslateOptions) -> Index:
    services = services_of(config, options.domain)
    by_host: dict[str, MeshService] = {}
    for svc in services:
        by_host.setdefault(svc.hostname, svc)
    rules: dict[str, list[DestinationRule]] = {}
    wildcard: list[tuple[str, DestinationRule]] = []
    for dr in config.destination_rules:
        host = resolve_short_name(dr.host, dr.meta.namespace, options.domain)
        if host.startswith("*"):
            wildcard.append((host, dr))
        else:
            rules.setdefault(host, []).append(dr)
    # Most specific wildcard first (longest suffix), as istiod's MostSpecificHostMatch.
    wildcard.sort(key=lambda item: -len(item[0]))
    vs_gateways = {
        vs.meta.key: tuple(resolve_gateway_name(g, vs.meta.namespace) for g in vs.gateways) or ("mesh",)
        for vs in config.virtual_services
    }
    vs_by_gateway: dict[str, list[VirtualService]] = {}
    for vs in config.virtual_services:
        for gw in dict.fromkeys(vs_gateways[vs.meta.key]):
            vs_by_gateway.setdefault(gw, []).append(vs)
    workloads = workloads_of(config, options.pod_network)
    by_label: dict[tuple[str, str, str], list[Workload]] = {}
    by_namespace: dict[str, list[Workload]] = {}
    for w in workloads:
        by_namespace.setdefault(w.namespace, []).append(w)
        for key, value in w.labels:
            by_label.setdefault((w.namespace, key, value), []).append(w)
    drains = {vs.meta.key: t for vs in config.virtual_services if (t := drain_targets(vs, options.domain))}
    return Index(
        config=config,
        _drains=drains,
        options=options,
        services=services,
        workloads=workloads,
        _by_host=by_host,
        _rules_by_host=rules,
        _wildcard_rules=wildcard,
        _vs_gateways=vs_gateways,
        _vs_by_gateway=vs_by_gateway,
        _workloads_by_label=by_label,
        _workloads_by_namespace=by_namespace,
    )
