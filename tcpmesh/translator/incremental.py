"""Incremental translation: on a new Config, rebuild only the Envoy resources whose inputs changed.

``IncrementalTranslator(proxy, options)`` keeps the last output per resource and what each depends on:

* clusters and ClusterLoadAssignments are owned by a service hostname; they depend on the Service or
  ServiceEntry, the DestinationRules whose host matches it, and the workloads its selector picks;
* gateway listeners are owned by a server port; they depend on the Gateway servers on that port, the
  VirtualServices bound to the gateway that may match the port, and the services and DestinationRules those
  VirtualServices route to (port resolution, tcp settings, hash policy).

``update(config)`` diffs the new Config against the last one by resource identity (``is`` first, then equality),
patches the index in place of rebuilding it when the edit keeps the index's keys (same name, host, gateways,
labels), and runs the ordinary ``translate_indexed`` on a *view* of the index restricted to the affected
hostnames and gateway ports, so the output is built by exactly the code a full ``translate`` runs. The result is
equal to ``translate(config, proxy, options)`` (tests/translator/test_incremental.py checks it over random
edits). Anything this module does not track precisely falls back to a full translation: sidecar proxies,
Deployments (pod addresses are assigned in order), changed options, and gateway port translation by a Service.
SDS Secrets are rebuilt after every update from the names the current listeners and clusters reference (kept per
resource as they are stored) and the Config's Secrets, so a rotated Secret changes only its SDS resources.
HTTP RouteConfigurations (RDS) are rebuilt whole from the new index after every change when the config has HTTP
(before or after): they depend on the Gateways, every bound VirtualService and its delegates, and service ports,
and are few and cheap next to clusters and endpoints, which stay incremental. HTTP rules affect nothing else: a
connection manager names its route config by server only, so an ``http:`` edit changes routes alone.

Pure in the translator's sense: no I/O, no clock in the output. Not thread-safe: use one per proxy group.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from tcpmesh.model.config import NO_LINEAGE, Config
from tcpmesh.model.resources import (
    DestinationRule,
    Gateway,
    L4Match,
    Resource,
    RouteDestination,
    Service,
    TLSMatch,
    VirtualService,
    WorkloadEntry,
    selector_matches,
)
from tcpmesh.translator.drain import drain_targets
from tcpmesh.translator.ecds import TCP_PROXY_ECDS_SEPARATOR
from tcpmesh.translator.gateway import http_gateway_routes
from tcpmesh.translator.index import Index, build_index, host_matches_pattern
from tcpmesh.translator.names import resolve_gateway_name, resolve_short_name
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.refs import REFERRING_KINDS, Refs
from tcpmesh.translator.secrets import build_secrets, cluster_sds_names, listener_sds_names
from tcpmesh.translator.services import MeshService, services_of
from tcpmesh.translator.translate import EnvoyResources, translate_indexed
from tcpmesh.translator.workloads import Workload, workloads_of

__all__ = ["Changes", "IncrementalTranslator", "Kind"]

Kind = Literal["listeners", "clusters", "endpoints", "extension_configs", "routes", "secrets"]
KINDS: tuple[Kind, ...] = ("listeners", "clusters", "endpoints", "extension_configs", "routes")
"""The kinds owned by a port, a hostname or (routes) their own name; ``secrets`` follow from what these
reference."""
R = TypeVar("R", bound=Resource)
T = TypeVar("T")
S = TypeVar("S", bound=Sequence[Any])
_ANY_PORT = 0
_GLOBAL = ""
"""Owner of clusters that belong to no service (BlackHoleCluster, PassthroughCluster)."""


@dataclass(frozen=True, slots=True)
class Changes:
    """What the last ``update`` did: its mode and, per kind, the names rebuilt with new bytes and those removed."""

    mode: Literal["full", "incremental", "unchanged"]
    changed: Mapping[Kind, frozenset[str]]
    removed: Mapping[Kind, frozenset[str]]
    rebuilt: int
    """How many resources were rebuilt (changed or not)."""


@dataclass(frozen=True, slots=True)
class _Footprint:
    """What a VirtualService's gateway listeners depend on and affect."""

    gateways: tuple[str, ...]
    ports: frozenset[int]
    """Server ports its rules may match; 0 means any port."""
    hosts: frozenset[str]


@dataclass
class _Affected:
    hosts: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    all_listeners: bool = False
    full: bool = False
    reindex: bool = False
    port_services: bool = False
    """A Service translating this gateway's ports (resolvePorts) changed."""


Obj = TypeVar("Obj")
V = TypeVar("V")


class _ByIdentity(Generic[Obj, V]):
    """A value computed from an object, kept by the object's identity (with the object, so its id stays its
    own); bounded: past `kept` objects it starts over (the objects of configs long gone)."""

    def __init__(self, kept: int = 256) -> None:
        self._kept = kept
        self._found: dict[int, tuple[Obj, V]] = {}

    def of(self, obj: Obj, compute: Callable[[Obj], V]) -> V:
        hit = self._found.get(id(obj))
        if hit is None or hit[0] is not obj:
            if len(self._found) >= self._kept:
                self._found.clear()
            hit = self._found[id(obj)] = (obj, compute(obj))
        return hit[1]


def _position(items: list[R], item: R) -> int:
    """Where `item` is: by identity, found in C (list.index would call the dataclass __eq__ on every resource
    before it, ~10 ms at 10 000), else by equality (the index may hold an equal object from an earlier Config)."""
    found = next(itertools.compress(itertools.count(), map(operator.is_, items, itertools.repeat(item))), None)
    return found if found is not None else items.index(item)


def _pairs(old: Sequence[R], new: Sequence[R], moved: Sequence[int] | None = None) -> list[tuple[R | None, R | None]]:
    """(old, new) per resource that differs; None on one side for an addition or removal. `moved`: the positions
    where `new` holds another object than `old`, when known (Config.moved)."""
    if old is new:
        return []
    if len(old) == len(new):
        out: list[tuple[R | None, R | None]] = []
        aligned = True
        # Only the positions that hold another object are looked at: known from the config's lineage, or found
        # in C (either way an edit of 10 000 is O(1) in Python here).
        if moved is None:
            moved = list(itertools.compress(range(len(new)), map(operator.is_not, old, new)))
        for i in moved:
            a, b = old[i], new[i]
            if a.meta.name != b.meta.name or a.meta.namespace != b.meta.namespace:
                aligned = False
                break
            if a != b:
                out.append((a, b))
        if aligned:
            return out
    before = {(r.meta.namespace, r.meta.name): r for r in old}
    after = {(r.meta.namespace, r.meta.name): r for r in new}
    pairs: list[tuple[R | None, R | None]] = []
    for key, gone in before.items():
        now = after.get(key)
        if now is None:
            pairs.append((gone, None))
        elif now is not gone and now != gone:
            pairs.append((gone, now))
    pairs.extend((None, b) for key, b in after.items() if key not in before)
    return pairs


def _cluster_owner(name: str) -> str:
    parts = name.split("|", 3)
    return parts[3] if len(parts) == 4 else _GLOBAL


def _listener_port(name: str) -> int:
    """The port of a listener, or of the listener an ECDS filter config (``<listener>~tcp_proxy...``) belongs to."""
    tail = name.split(TCP_PROXY_ECDS_SEPARATOR, 1)[0].rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else _ANY_PORT


class IncrementalTranslator:
    """Translate successive Configs for one proxy, rebuilding only what each change touches."""

    def __init__(self, proxy: Proxy, options: TranslateOptions | None = None) -> None:
        self.proxy = proxy
        self.options = options or TranslateOptions()
        self._config: Config | None = None
        self._index: Index | None = None
        self._messages: dict[Kind, dict[str, Any]] = {k: {} for k in KINDS}
        self._bytes: dict[Kind, dict[str, bytes]] = {k: {} for k in KINDS}
        self._owned: dict[Kind, dict[Any, set[str]]] = {k: {} for k in KINDS}
        self._order: dict[Kind, list[str]] = {k: [] for k in KINDS}
        self._position: dict[Kind, dict[str, int]] = {k: {} for k in KINDS}
        """Position of each name in ``_order`` (built on first use after the order changes)."""
        self._refs: dict[str, dict[str, Refs]] = {k: {} for k in REFERRING_KINDS}
        """What each listener, filter config and route config names, as the builders reported it: replaced, not
        changed, on an update (the previous result keeps its own)."""
        self._result = EnvoyResources(listeners=(), clusters=(), endpoints=(), extension_configs=())
        self._footprints: dict[tuple[str, str], _Footprint] = {}
        self._host_vs: dict[str, set[tuple[str, str]]] = {}
        self._translating_services: tuple[Service, ...] = ()
        self._selector_map: tuple[tuple[MeshService, ...], dict[tuple[str, str, str], list[MeshService]]] | None = None
        self.changes = Changes("unchanged", {}, {}, 0)
        self._positions = _Positions()
        self._sds: dict[tuple[Kind, str], list[str]] = {}
        """SDS names per listener or cluster that references any."""
        self._secret_bytes: dict[str, bytes] = {}
        self._secrets_key: tuple[frozenset[str], tuple[Any, ...]] | None = None
        self._by_port: _ByIdentity[Gateway, dict[int, list[tuple[int, Any]]]] = _ByIdentity()
        """Per Gateway, its servers by port number with their positions."""
        self._vs_http: tuple[tuple[VirtualService, ...], int] | None = None
        self._pairs_memo: dict[tuple[int, int], tuple[Any, Any, list[Any]]] = {}
        """`_pairs` per (old, new) tuple of the current update (kept with the tuples, so the ids hold)."""
        self._lineage = NO_LINEAGE
        """The lineage of the config being translated: which positions its edit replaced, for `_pairs`."""
        self._stale: dict[Kind, frozenset[str] | None] = {}
        """Kinds whose tuple in `_result` is behind `_messages` since `advance`: the names changed in place,
        or None (names came or went: rebuilt in order). `resources` brings them up to date when asked."""
        self._refs_stale = False
        self._refs_shared: set[str] = set()
        """Kinds whose `_refs` dict a returned result holds: copied before the next change (copy on write)."""
        self._http: _ByIdentity[Gateway, bool] = _ByIdentity()
        """`_gateway_http` per Gateway: an edit at 10 000 services must not walk a gateway's 10 000 servers twice
        to learn nothing changed."""

    # ----- public

    @property
    def index(self) -> Index:
        if self._index is None:
            raise RuntimeError("update() has not been called yet")
        return self._index

    @property
    def resources(self) -> EnvoyResources:
        """The resources of the last `advance` (built on first use: a publisher patching its snapshot from
        `changes` and `messages` never needs the 10 000-element tuples, ~0.6 ms per edit to rebuild)."""
        if self._stale or self._refs_stale:
            tuples = {kind: self._tuple(kind, names) for kind, names in self._stale.items()}
            self._result = dataclasses.replace(self._result, **tuples, references=self._references())
            self._refs_shared.update(REFERRING_KINDS)
            self._stale, self._refs_stale = {}, False
        return self._result

    def current_references(self) -> Mapping[str, Mapping[str, Refs]]:
        """What each current listener, filter config and route config names: valid until the next `advance`
        (unlike `resources.references`, this hands out nothing that must then be copied before a change)."""
        return self._references()

    def serialized(self) -> Mapping[Kind, Mapping[str, bytes]]:
        """Deterministic serialisations of the current resources, by kind and name (reused across updates)."""
        return {**self._bytes, "secrets": self._secret_bytes}

    def messages(self) -> Mapping[Kind, Mapping[str, Any]]:
        """The current resources by kind and name (with `changes`, what a publisher patches its snapshot with)."""
        return {**self._messages, "secrets": {m.name: m for m in self._result.secrets}}

    def update(self, config: Config) -> EnvoyResources:
        """The resources for ``config``: equal to ``translate(config, proxy, options)``."""
        self.advance(config)
        return self.resources

    def advance(self, config: Config) -> None:
        """Translate ``config``: `changes`, `messages` and `serialized` say the outcome; `resources` builds it."""
        self._update(config)
        self._update_secrets(config)

    def _update_secrets(self, config: Config) -> None:
        names = frozenset(n for found in self._sds.values() for n in found)
        key = (names, config.secrets)
        if key == self._secrets_key:
            return
        self._secrets_key = key
        messages = build_secrets(names, self.proxy.namespace, config.secrets) if names else []
        now = {m.name: m.SerializeToString(deterministic=True) for m in messages}
        before = self._secret_bytes
        changed = frozenset(n for n, b in now.items() if before.get(n) != b)
        removed = frozenset(before.keys() - now.keys())
        self._secret_bytes = now
        self._result = dataclasses.replace(self._result, secrets=tuple(messages))
        if changed or removed:
            c = self.changes
            self.changes = Changes(
                "incremental" if c.mode == "unchanged" else c.mode,
                {**c.changed, "secrets": changed},
                {**c.removed, "secrets": removed},
                c.rebuilt + len(messages),
            )

    def _update(self, config: Config) -> None:
        old_config, index = self._config, self._index
        self._lineage = config.lineage
        if old_config is None or index is None or self.proxy.role != "gateway":
            self._full(config)
            return
        if config is old_config:
            self.changes = Changes("unchanged", {}, {}, 0)
            return
        affected = self._affected(old_config, config, index)
        if affected.full:
            self._full(config)
            return
        if affected.reindex:
            new_index = build_index(config, self.options)
        else:
            new_index = self._patched_index(index, old_config, config)
        self._config, self._index = config, new_index
        if not (affected.hosts or affected.ports or affected.all_listeners):
            self.changes = Changes("unchanged", {}, {}, 0)
        else:
            self._rebuild(config, new_index, affected)
        if self._has_http(old_config) or self._has_http(config):
            self._rebuild_routes(new_index)

    def _servers_on(self, gw: Gateway, ports: frozenset[int]) -> tuple[Any, ...]:
        """The Gateway's servers on these ports, in its order, without walking its 10 000 servers per edit."""
        by_port = self._by_port.of(gw, _servers_by_port)
        return tuple(server for _, server in sorted(x for p in ports for x in by_port.get(p, ())))

    def _pairs(self, old: Sequence[R], new: Sequence[R]) -> list[tuple[R | None, R | None]]:
        """`_pairs`, asked once per update and kind (the affected set and the index patch both need it)."""
        if old is new:
            return []
        memo = self._pairs_memo
        key = (id(old), id(new))
        hit = memo.get(key)
        if hit is None or hit[0] is not old or hit[1] is not new:
            if len(memo) >= 16:
                memo.clear()
            hit = memo[key] = (old, new, _pairs(old, new, self._lineage.positions(old, new)))
        return hit[2]

    def _http_routes(self, vss: tuple[VirtualService, ...]) -> int:
        """How many VirtualServices have HTTP routes: counted once, then updated from the pairs that differ,
        so the two asks per edit do not walk 10 000 VirtualServices."""
        last = self._vs_http
        if last is not None and last[0] is vss:
            return last[1]
        if last is not None:
            pairs = self._pairs(last[0], vss)
            count = last[1] - sum(bool(a.http) for a, _ in pairs if a) + sum(bool(b.http) for _, b in pairs if b)
        else:
            count = sum(map(bool, map(_HTTP_ROUTES, vss)))
        self._vs_http = (vss, count)
        return count

    def _has_http(self, config: Config) -> bool:
        """Whether ``config`` may produce RouteConfigurations: an HTTP route, or a Gateway server speaking HTTP."""
        if self._http_routes(config.virtual_services):
            return True
        return any(self._http.of(gw, _gateway_http) for gw in config.gateways)

    def _rebuild_routes(self, index: Index) -> None:
        """Every RouteConfiguration from the whole index (the listener view of _rebuild sees affected ports only)."""
        built = sorted(http_gateway_routes(index, self.proxy), key=lambda rc: str(rc[0].name))
        routes = [r for r, _ in built]
        before = self._bytes["routes"]
        now = {r.name: r.SerializeToString(deterministic=True) for r in routes}
        changed = frozenset(n for n, b in now.items() if before.get(n) != b)
        removed = frozenset(before.keys() - now.keys())
        c = self.changes
        if not changed and not removed:
            self.changes = dataclasses.replace(c, rebuilt=c.rebuilt + len(routes))
            return
        self._messages["routes"] = {r.name: r for r in routes}
        self._bytes["routes"] = now
        self._owned["routes"] = {n: {n} for n in now}
        self._order["routes"] = [r.name for r in routes]
        self._position["routes"] = {}
        self._refs["routes"] = {r.name: {"clusters": c} for r, c in built if c}
        self._refs_shared.discard("routes")
        self._result = dataclasses.replace(self._result, routes=tuple(routes))
        self._refs_stale = True
        self.changes = Changes(
            "incremental" if c.mode == "unchanged" else c.mode,
            {**c.changed, "routes": changed},
            {**c.removed, "routes": removed},
            c.rebuilt + len(routes),
        )

    # ----- full translation

    def _full(self, config: Config) -> None:
        index = build_index(config, self.options)
        out = translate_indexed(index, self.proxy)
        old_bytes = self._bytes
        self._config, self._index = config, index
        self._messages = {k: {} for k in KINDS}
        self._bytes = {k: {} for k in KINDS}
        self._owned = {k: {} for k in KINDS}
        self._sds = {}
        self._refs = {k: dict(out.references.get(k, {})) for k in REFERRING_KINDS}
        changed: dict[Kind, frozenset[str]] = {}
        removed: dict[Kind, frozenset[str]] = {}
        for kind, messages in zip(KINDS, _outputs(out), strict=True):
            self._store(kind, messages)
            self._order[kind] = [self._name(kind, m) for m in messages]
            self._position[kind] = {}
            before = old_bytes[kind]
            now = self._bytes[kind]
            changed[kind] = frozenset(n for n, b in now.items() if before.get(n) != b)
            removed[kind] = frozenset(before.keys() - now.keys())
        self._result = out
        self._stale, self._refs_stale, self._refs_shared = {}, False, set()  # out.references: its own dicts
        self._footprints = {}
        self._host_vs = {}
        for vs in config.virtual_services:
            self._add_footprint(vs, index)
        self._translating_services = self._gateway_port_services(config)
        self.changes = Changes("full", changed, removed, sum(len(m) for m in self._messages.values()))

    # ----- what changed

    def _affected(self, old: Config, new: Config, index: Index) -> _Affected:
        a = _Affected()
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
        if self._translating_services and a.ports:
            # Listeners renamed by port translation are not owned by their server port: rebuild them all.
            a.all_listeners = True
        return a

    def _gateways_of(self, vs: VirtualService) -> tuple[str, ...]:
        return tuple(resolve_gateway_name(g, vs.meta.namespace) for g in vs.gateways) or ("mesh",)

    def _footprint(self, vs: VirtualService) -> _Footprint:
        ports: set[int] = set()
        hosts: set[str] = set()
        rules: list[tuple[Sequence[L4Match | TLSMatch], Sequence[RouteDestination]]] = [
            *((r.match, r.route) for r in vs.tcp),
            *((r.match, r.route) for r in vs.tls),
        ]
        for matches, route in rules:
            if not matches:
                ports.add(_ANY_PORT)
            ports.update(m.port for m in matches)
            hosts.update(resolve_short_name(d.destination.host, vs.meta.namespace, self.options.domain) for d in route)
        return _Footprint(self._gateways_of(vs), frozenset(ports), frozenset(hosts))

    def _add_footprint(self, vs: VirtualService, index: Index) -> None:
        key = (vs.meta.namespace, vs.meta.name)
        fp = self._footprint(vs)
        self._footprints[key] = fp
        for host in fp.hosts:
            self._host_vs.setdefault(host, set()).add(key)

    def _drop_footprint(self, key: tuple[str, str]) -> None:
        fp = self._footprints.pop(key, None)
        if fp is not None:
            for host in fp.hosts:
                keys = self._host_vs.get(host)
                if keys is not None:
                    keys.discard(key)

    def _vs_affects(self, vs: VirtualService, index: Index, a: _Affected) -> None:
        fp = self._footprint(vs)
        if fp.gateways == ("mesh",):
            return  # mesh-only: sidecar listeners, not this gateway's
        if _ANY_PORT in fp.ports:
            a.all_listeners = True
        a.ports.update(fp.ports)

    def _hosts_affected(self, hosts: Iterable[str], a: _Affected) -> None:
        """Clusters of these hosts, and listeners of VirtualServices routing to them."""
        for host in hosts:
            a.hosts.add(host)
            for key in self._host_vs.get(host, ()):
                fp = self._footprints[key]
                if fp.gateways == ("mesh",):
                    continue
                if _ANY_PORT in fp.ports:
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

    # ----- index patching (edits that keep every key of the index)

    def _patched_index(self, index: Index, old: Config, new: Config) -> Index:
        vs_by_gateway = index._vs_by_gateway
        memo = index._vs_by_gateway_port
        drains = index._drains
        for vs_old, vs_new in self._pairs(old.virtual_services, new.virtual_services):
            assert vs_old is not None
            assert vs_new is not None
            targets = drain_targets(vs_new, self.options.domain)
            if targets or vs_old.meta.key in drains:
                drains = {k: v for k, v in drains.items() if k != vs_old.meta.key}
                if targets:
                    drains[vs_new.meta.key] = targets
            key = (vs_old.meta.namespace, vs_old.meta.name)
            self._drop_footprint(key)
            self._add_footprint(vs_new, index)
            if vs_by_gateway is index._vs_by_gateway:
                vs_by_gateway = dict(vs_by_gateway)
            for gw in dict.fromkeys(index._vs_gateways[vs_old.meta.key]):
                bound = list(vs_by_gateway[gw])
                bound[_position(bound, vs_old)] = vs_new
                vs_by_gateway[gw] = bound
            if self._footprint(vs_old).ports != self._footprints[key].ports and memo is index._vs_by_gateway_port:
                memo = {}
        rules_by_host = index._rules_by_host
        wildcard = index._wildcard_rules
        for dr_old, dr_new in self._pairs(old.destination_rules, new.destination_rules):
            assert dr_old is not None
            assert dr_new is not None
            host = resolve_short_name(dr_old.host, dr_old.meta.namespace, self.options.domain)
            if host.startswith("*"):
                wildcard = [(h, dr_new if _same(dr, dr_old) else dr) for h, dr in wildcard]
            else:
                if rules_by_host is index._rules_by_host:
                    rules_by_host = dict(rules_by_host)
                rules_by_host[host] = [dr_new if _same(dr, dr_old) else dr for dr in rules_by_host[host]]
        services = index.services
        by_host = index._by_host
        for svc_old, svc_new in self._pairs(old.services, new.services):
            assert svc_old is not None
            assert svc_new is not None
            hostname = f"{svc_old.meta.name}.{svc_old.meta.namespace}.svc.{self.options.domain}"
            one_old = services_of(Config(services=(svc_old,)), self.options.domain)[0]
            one_new = services_of(Config(services=(svc_new,)), self.options.domain)[0]
            position = self._positions.find(services, (one_old.hostname, one_old.namespace), _service_key)
            if position is not None and services[position] == one_old:
                listed = list(services)
                listed[position] = one_new
                services = self._positions.moved(services, tuple(listed))
                if by_host.get(hostname) == one_old:
                    if by_host is index._by_host:
                        by_host = dict(by_host)
                    by_host[hostname] = one_new
        workloads = index.workloads
        by_label = index._workloads_by_label
        by_namespace = index._workloads_by_namespace
        for we_old, we_new in self._pairs(old.workload_entries, new.workload_entries):
            assert we_old is not None
            assert we_new is not None
            w_old = workloads_of(Config(workload_entries=(we_old,)), self.options.pod_network)[0]
            w_new = workloads_of(Config(workload_entries=(we_new,)), self.options.pod_network)[0]
            workloads = self._replaced(workloads, w_old, w_new)
            if by_namespace is index._workloads_by_namespace:
                by_namespace = dict(by_namespace)
            by_namespace[w_old.namespace] = self._replaced(by_namespace[w_old.namespace], w_old, w_new)
            if by_label is index._workloads_by_label:
                by_label = dict(by_label)
            for k, v in w_old.labels:
                key3 = (w_old.namespace, k, v)
                by_label[key3] = self._replaced(by_label[key3], w_old, w_new)
        return dataclasses.replace(
            index,
            config=new,
            services=services,
            workloads=workloads,
            _by_host=by_host,
            _rules_by_host=rules_by_host,
            _wildcard_rules=wildcard,
            _vs_by_gateway=vs_by_gateway,
            _workloads_by_label=by_label,
            _workloads_by_namespace=by_namespace,
            _vs_by_gateway_port=memo,
            _drains=drains,
        )

    def _replaced(self, items: S, old: Workload, new: Workload) -> S:
        """``items`` (a list or tuple of workloads) with ``old`` replaced by ``new``, at the same position."""
        position = self._positions.find(items, _workload_key(old), _workload_key)
        if position is None or items[position] != old:
            raise LookupError(f"workload {old.namespace}/{old.name} is not indexed")
        listed = list(items)
        listed[position] = new
        out: Any = tuple(listed) if isinstance(items, tuple) else listed
        moved: S = self._positions.moved(items, out)
        return moved

    # ----- rebuilding the affected resources

    def _rebuild(self, config: Config, index: Index, a: _Affected) -> None:
        if a.reindex:
            self._footprints = {}
            self._host_vs = {}
            for vs in config.virtual_services:
                self._add_footprint(vs, index)
        if a.port_services:
            self._translating_services = self._gateway_port_services(config)
        all_listeners = a.all_listeners or bool(self._translating_services and a.ports)
        ports = frozenset(a.ports)
        gateways: tuple[Gateway, ...]
        if all_listeners:
            gateways = config.gateways
        elif ports:
            gateways = tuple(dataclasses.replace(gw, servers=self._servers_on(gw, ports)) for gw in config.gateways)
        else:
            gateways = ()
        hosts = a.hosts
        services = index.services
        view_services = (
            tuple(itertools.compress(services, map(hosts.__contains__, map(_hostname, services)))) if hosts else ()
        )
        view = dataclasses.replace(
            index,
            config=dataclasses.replace(config, gateways=gateways, services=self._translating_services),
            services=view_services,
        )
        out = translate_indexed(view, self.proxy)
        changed: dict[Kind, frozenset[str]] = {}
        removed: dict[Kind, frozenset[str]] = {}
        owners: dict[Kind, Iterable[Any]] = {
            "listeners": self._owned["listeners"].keys() if all_listeners else ports,
            "extension_configs": self._owned["extension_configs"].keys() if all_listeners else ports,
            "clusters": [*hosts, _GLOBAL],
            "endpoints": [*hosts, _GLOBAL],
        }
        rebuilt = 0
        renamed: set[Kind] = set()
        for kind, messages in zip(KINDS, _outputs(out), strict=True):
            if kind == "routes" or (kind in ("listeners", "extension_configs") and not (all_listeners or ports)):
                continue  # routes: rebuilt whole by _rebuild_routes (the view holds the affected ports only)
            before = {n: self._bytes[kind][n] for o in list(owners[kind]) for n in self._owned[kind].get(o, ())}
            refs: dict[str, Refs] = {}  # clusters and endpoints name nothing kept here
            if kind in self._refs:
                if kind in self._refs_shared:  # a returned result holds it: copy before changing
                    self._refs[kind] = dict(self._refs[kind])
                    self._refs_shared.discard(kind)
                refs = self._refs[kind]
            dropped: list[str] = []
            for owner in list(owners[kind]):
                for name in self._owned[kind].pop(owner, ()):
                    del self._messages[kind][name]
                    del self._bytes[kind][name]
                    self._sds.pop((kind, name), None)
                    dropped.append(name)
            self._store(kind, messages)
            fresh = out.references.get(kind, {})
            refs.update(fresh)
            # Only names that went are deleted (a rebuilt one is overwritten): a dict with deleted slots is copied
            # item by item, ~6x slower than a compact one, and this one is copied on every edit.
            for name in dropped:
                if name not in fresh:
                    refs.pop(name, None)
            rebuilt += len(messages)
            now = {self._name(kind, m) for m in messages}
            changed[kind] = frozenset(n for n in now if before.get(n) != self._bytes[kind][n])
            removed[kind] = frozenset(before.keys() - now)
            if removed[kind] or now - before.keys():
                self._order[kind] = sorted(self._messages[kind])
                self._position[kind] = {}
                renamed.add(kind)
        for kind in ("listeners", "clusters", "endpoints", "extension_configs"):
            if kind in renamed:
                self._stale[kind] = None
            elif changed.get(kind):
                names = self._stale.get(kind, frozenset())
                self._stale[kind] = None if names is None else names | changed[kind]
        self._refs_stale = True
        self.changes = Changes("incremental", changed, removed, rebuilt)

    def _references(self) -> dict[str, Mapping[str, Refs]]:
        return {k: self._refs[k] for k in REFERRING_KINDS}

    def _tuple(self, kind: Kind, changed: frozenset[str] | None) -> tuple[Any, ...]:
        """The kind's messages in name order, from `_result`'s with `changed` replaced in place (None: names came
        or went, so positions are not reused)."""
        messages = self._messages[kind]
        order = self._order[kind]
        if changed is not None and len(changed) * 8 < len(order):
            position = self._position[kind]
            if not position:
                position.update((n, i) for i, n in enumerate(order))
            listed = list(getattr(self._result, kind))
            for name in changed:
                listed[position[name]] = messages[name]
            return tuple(listed)
        return tuple(messages[n] for n in order)

    @staticmethod
    def _name(kind: Kind, message: Any) -> str:
        return str(message.cluster_name if kind == "endpoints" else message.name)

    def _store(self, kind: Kind, messages: Iterable[Any]) -> None:
        store, data, owned = self._messages[kind], self._bytes[kind], self._owned[kind]
        for m in messages:
            name = self._name(kind, m)
            store[name] = m
            data[name] = m.SerializeToString(deterministic=True)
            if kind in ("listeners", "clusters"):
                found = listener_sds_names(m) if kind == "listeners" else cluster_sds_names(m)
                if found:
                    self._sds[(kind, name)] = found
                else:
                    self._sds.pop((kind, name), None)
            if kind == "routes":
                owner: Any = name
            else:
                owner = _listener_port(name) if kind in ("listeners", "extension_configs") else _cluster_owner(name)
            owned.setdefault(owner, set()).add(name)


def _outputs(out: EnvoyResources) -> tuple[tuple[Any, ...], ...]:
    """The resources of ``out`` in KINDS order."""
    return (out.listeners, out.clusters, out.endpoints, out.extension_configs, out.routes)


def _servers_by_port(gw: Gateway) -> dict[int, list[tuple[int, Any]]]:
    by_port: dict[int, list[tuple[int, Any]]] = {}
    for i, server in enumerate(gw.servers):
        by_port.setdefault(server.port.number, []).append((i, server))
    return by_port


def _gateway_http(gw: Gateway) -> bool:
    """Whether a Gateway has a server speaking HTTP (plaintext, or HTTPS terminated at the gateway)."""
    return any(
        s.port.protocol.upper() in _HTTP
        or (s.port.protocol.upper() == "HTTPS" and s.tls is not None and s.tls.mode not in _PASSTHROUGH)
        for s in gw.servers
    )


_HTTP = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY"})
_HTTP_ROUTES = operator.attrgetter("http")
_PASSTHROUGH = frozenset({"PASSTHROUGH", "AUTO_PASSTHROUGH"})


def _same(a: Resource, b: Resource) -> bool:
    """The same resource (kind, namespace, name): the index may hold an equal object from an earlier Config."""
    return a.meta.kind == b.meta.kind and a.meta.namespace == b.meta.namespace and a.meta.name == b.meta.name


_hostname = operator.attrgetter("hostname")


def _service_key(s: MeshService) -> Hashable:
    return (s.hostname, s.namespace)


def _workload_key(w: Workload) -> Hashable:
    return (w.kind, w.namespace, w.name)


class _Positions:
    """Position of each item in a big list or tuple by key, remembered per container (by identity).

    Replacing one item keeps every position, so the map moves to the new container instead of being rebuilt.
    """

    def __init__(self) -> None:
        self._maps: dict[int, tuple[Sequence[Any], dict[Hashable, int]]] = {}

    def find(self, items: Sequence[T], key: Hashable, key_of: Callable[[T], Hashable]) -> int | None:
        found = self._maps.get(id(items))
        if found is None or found[0] is not items:
            positions: dict[Hashable, int] = {}
            for i, item in enumerate(items):
                positions.setdefault(key_of(item), i)
            if len(self._maps) > 64:
                self._maps.clear()
            found = self._maps[id(items)] = (items, positions)
        return found[1].get(key)

    def moved(self, old: Sequence[Any], new: S) -> S:
        found = self._maps.pop(id(old), None)
        if found is not None and found[0] is old:
            self._maps[id(new)] = (new, found[1])
        return new
