"""What an edit affects, for one gateway proxy: the hostnames whose clusters and endpoints, and the server ports
whose listeners, the incremental translator rebuilds.

Each VirtualService bound to the gateway leaves a footprint (the ports its rules may match, the hosts they
route to), kept per VirtualService and by host, so a DestinationRule or Service edit finds the listeners that
route to its host without walking every VirtualService.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcpmesh.model.config import Config
from tcpmesh.model.resources import (
    DestinationRule,
    L4Match,
    RouteDestination,
    Service,
    TLSMatch,
    VirtualService,
    WorkloadEntry,
    selector_matches,
)
from tcpmesh.translator.drain import drain_targets
from tcpmesh.translator.index import Index, host_matches_pattern
from tcpmesh.translator.names import resolve_gateway_name, resolve_short_name
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.services import MeshService

__all__ = ["ANY_PORT", "Affected", "ChangeFinder", "Footprint", "Pairs"]

ANY_PORT = 0
"""A footprint's port for rules that match any port."""

Pairs = Callable[[Sequence[Any], Sequence[Any]], list[tuple[Any, Any]]]
"""(old, new) per resource that differs between two tuples of one kind (the translator's memoized diff)."""


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a VirtualService's gateway listeners depend on and affect."""

    gateways: tuple[str, ...]
    ports: frozenset[int]
    """Server ports its rules may match; 0 means any port."""
    hosts: frozenset[str]


@dataclass
class Affected:
    """What an edit affects: clusters and endpoints of `hosts`, listeners on `ports` (or all of them), a full
    translation, a rebuilt index, a changed port-translating Service."""

    hosts: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    all_listeners: bool = False
    full: bool = False
    reindex: bool = False
    port_services: bool = False
    """A Service translating this gateway's ports (resolvePorts) changed."""


class ChangeFinder:
    """The footprints of a gateway's VirtualServices and the Services translating its ports, and from them what
    an edit affects. Not thread-safe: one per translator."""

    def __init__(self, proxy: Proxy, options: TranslateOptions, pairs: Pairs) -> None:
        self.proxy = proxy
        self.options = options
        self._pairs = pairs
        self._footprints: dict[tuple[str, str], Footprint] = {}
        self._host_vs: dict[str, set[tuple[str, str]]] = {}
        self._selector_map: tuple[tuple[MeshService, ...], dict[tuple[str, str, str], list[MeshService]]] | None = None
        self.translating_services: tuple[Service, ...] = ()
        """The Services that may translate this gateway's ports (resolvePorts): the only ones listeners read."""

    def reset(self, config: Config, *, footprints: bool = True, port_services: bool = True) -> None:
        """Rebuild the footprints of every VirtualService and/or the port-translating Services of `config`."""
        if footprints:
            self._footprints, self._host_vs = {}, {}
            for vs in config.virtual_services:
                self.add(vs)
        if port_services:
            self.translating_services = self._gateway_port_services(config)

    def ports_of(self, key: tuple[str, str]) -> frozenset[int]:
        """The ports of the tracked footprint of VirtualService (namespace, name)."""
        return self._footprints[key].ports

    def affected(self, old: Config, new: Config, index: Index) -> Affected:
        """What the edit from `old` to `new` affects (`index`: the index of `old`)."""
        a = Affected()
        if old.deployments != new.deployments:
            a.full = True  # pod addresses are handed out in order: any change may move every pod
            return a
        domain = self.options.domain
        if self._pairs(old.gateways, new.gateways):
            a.all_listeners = True  # the index does not depend on Gateways: no reindex
        for vs_old, vs_new in self._pairs(old.virtual_services, new.virtual_services):
            for vs in (vs_old, vs_new):
                if vs is not None:
                    self._vs_affects(vs, index, a)
                    # A drain is EDS metadata of the drained subset's clusters.
                    a.hosts.update(t.host for t in drain_targets(vs, domain))
            if vs_old is None or vs_new is None or self._gateways_of(vs_old) != self._gateways_of(vs_new):
                a.reindex = True
        for dr_old, dr_new in self._pairs(old.destination_rules, new.destination_rules):
            for dr in (dr_old, dr_new):
                if dr is not None:
                    self._hosts_affected(self._rule_hosts(dr, index), a)
            if dr_old is None or dr_new is None or dr_old.host != dr_new.host:
                a.reindex = True
        for svc_old, svc_new in self._pairs(old.services, new.services):
            for svc in (svc_old, svc_new):
                if svc is not None:
                    self._hosts_affected({f"{svc.meta.name}.{svc.meta.namespace}.svc.{domain}"}, a)
                    if self._translates_ports(svc):
                        a.all_listeners = a.port_services = True
            if svc_old is None or svc_new is None:
                a.reindex = True
        for se_old, se_new in self._pairs(old.service_entries, new.service_entries):
            for se in (se_old, se_new):
                if se is not None:
                    self._hosts_affected(set(se.hosts), a)
            a.reindex = True
        for we_old, we_new in self._pairs(old.workload_entries, new.workload_entries):
            for we in (we_old, we_new):
                if we is not None:
                    a.hosts.update(self._selecting_hosts(we, index))
            if we_old is None or we_new is None or we_old.spec.labels != we_new.spec.labels:
                a.reindex = True
        if self.translating_services and a.ports:
            # Listeners renamed by port translation are not owned by their server port: rebuild them all.
            a.all_listeners = True
        return a

    def _gateways_of(self, vs: VirtualService) -> tuple[str, ...]:
        return tuple(resolve_gateway_name(g, vs.meta.namespace) for g in vs.gateways) or ("mesh",)

    def footprint(self, vs: VirtualService) -> Footprint:
        ports: set[int] = set()
        hosts: set[str] = set()
        rules: list[tuple[Sequence[L4Match | TLSMatch], Sequence[RouteDestination]]] = [
            *((r.match, r.route) for r in vs.tcp),
            *((r.match, r.route) for r in vs.tls),
        ]
        for matches, route in rules:
            if not matches:
                ports.add(ANY_PORT)
            ports.update(m.port for m in matches)
            hosts.update(resolve_short_name(d.destination.host, vs.meta.namespace, self.options.domain) for d in route)
        return Footprint(self._gateways_of(vs), frozenset(ports), frozenset(hosts))

    def add(self, vs: VirtualService) -> None:
        """Track `vs`'s footprint (a new or edited VirtualService)."""
        key = (vs.meta.namespace, vs.meta.name)
        fp = self.footprint(vs)
        self._footprints[key] = fp
        for host in fp.hosts:
            self._host_vs.setdefault(host, set()).add(key)

    def drop(self, key: tuple[str, str]) -> None:
        fp = self._footprints.pop(key, None)
        if fp is not None:
            for host in fp.hosts:
                keys = self._host_vs.get(host)
                if keys is not None:
                    keys.discard(key)

    def _vs_affects(self, vs: VirtualService, index: Index, a: Affected) -> None:
        fp = self.footprint(vs)
        if fp.gateways == ("mesh",):
            return  # mesh-only: sidecar listeners, not this gateway's
        if ANY_PORT in fp.ports:
            a.all_listeners = True
        a.ports.update(fp.ports)

    def _hosts_affected(self, hosts: Iterable[str], a: Affected) -> None:
        """Clusters of these hosts, and listeners of VirtualServices routing to them."""
        for host in hosts:
            a.hosts.add(host)
            for key in self._host_vs.get(host, ()):
                fp = self._footprints[key]
                if fp.gateways == ("mesh",):
                    continue
                if ANY_PORT in fp.ports:
                    a.all_listeners = True
                a.ports.update(fp.ports)

    def _rule_hosts(self, dr: DestinationRule, index: Index) -> set[str]:
        pattern = resolve_short_name(dr.host, dr.meta.namespace, self.options.domain)
        if not pattern.startswith("*"):
            return {pattern}
        hosts = {svc.hostname for svc in index.services if host_matches_pattern(pattern, svc.hostname)}
        hosts.update(h for h in self._host_vs if host_matches_pattern(pattern, h))
        return hosts

    def _selecting_hosts(self, we: WorkloadEntry, index: Index) -> set[str]:
        """Hostnames of the services whose selector picks this WorkloadEntry."""
        services = index.services
        if self._selector_map is None or self._selector_map[0] is not services:
            buckets: dict[tuple[str, str, str], list[MeshService]] = {}
            for svc in services:
                if svc.selector is None:
                    continue
                first = svc.selector[0] if svc.selector else ("", "")
                buckets.setdefault((svc.namespace, *first), []).append(svc)
            self._selector_map = (services, buckets)
        buckets = self._selector_map[1]
        labels = we.spec.labels
        mine = dict(labels)
        candidates = list(buckets.get((we.meta.namespace, "", ""), ()))
        for k, v in labels:
            candidates.extend(buckets.get((we.meta.namespace, k, v), ()))
        return {svc.hostname for svc in candidates if svc.selector is not None and selector_matches(svc.selector, mine)}

    def _translates_ports(self, svc: Service) -> bool:
        """Does this Service translate gateway ports for the proxy (gateway.go resolvePorts)?"""
        return bool(
            svc.selector
            and self.proxy.selected_by(svc.selector)
            and svc.meta.namespace == self.proxy.namespace
            and any(isinstance(p.target_port, int) and p.target_port for p in svc.ports)
        )

    def _gateway_port_services(self, config: Config) -> tuple[Service, ...]:
        """The Services that may translate this gateway's ports: the only ones listeners read."""
        return tuple(s for s in config.services if self._translates_ports(s))
