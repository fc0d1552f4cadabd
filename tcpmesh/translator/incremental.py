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

What an edit affects is found in affected.py (VirtualService footprints), the index is patched in
index_patch.py, and changed resources are found by identity (or the Config's lineage) in identity.py.

Pure in the translator's sense: no I/O, no clock in the output. Not thread-safe: use one per proxy group.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from tcpmesh.model.config import NO_LINEAGE, Config
from tcpmesh.model.resources import (
    Gateway,
    Resource,
    VirtualService,
)
from tcpmesh.translator.affected import ANY_PORT, Affected, ChangeFinder
from tcpmesh.translator.ecds import TCP_PROXY_ECDS_SEPARATOR
from tcpmesh.translator.gateway import http_gateway_routes
from tcpmesh.translator.identity import ByIdentity, Positions, changed_pairs
from tcpmesh.translator.index import Index, build_index
from tcpmesh.translator.index_patch import patched_index
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.refs import REFERRING_KINDS, Refs
from tcpmesh.translator.secrets import build_secrets, cluster_sds_names, listener_sds_names
from tcpmesh.translator.translate import EnvoyResources, translate_indexed

__all__ = ["Changes", "IncrementalTranslator", "Kind"]

Kind = Literal["listeners", "clusters", "endpoints", "extension_configs", "routes", "secrets"]
KINDS: tuple[Kind, ...] = ("listeners", "clusters", "endpoints", "extension_configs", "routes")
"""The kinds owned by a port, a hostname or (routes) their own name; ``secrets`` follow from what these
reference."""
R = TypeVar("R", bound=Resource)
T = TypeVar("T")
S = TypeVar("S", bound=Sequence[Any])
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


def _cluster_owner(name: str) -> str:
    parts = name.split("|", 3)
    return parts[3] if len(parts) == 4 else _GLOBAL


def _owner(kind: Kind, name: str) -> Any:
    """What a resource is rebuilt with: its listener's port, its service's host, or itself (a route config)."""
    if kind == "routes":
        return name
    return _listener_port(name) if kind in ("listeners", "extension_configs") else _cluster_owner(name)


def _listener_port(name: str) -> int:
    """The port of a listener, or of the listener an ECDS filter config (``<listener>~tcp_proxy...``) belongs to."""
    tail = name.split(TCP_PROXY_ECDS_SEPARATOR, 1)[0].rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else ANY_PORT


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
        self._finder = ChangeFinder(proxy, self.options, self._pairs)
        self.changes = Changes("unchanged", {}, {}, 0)
        self._positions = Positions()
        self._sds: dict[tuple[Kind, str], list[str]] = {}
        """SDS names per listener or cluster that references any."""
        self._secret_bytes: dict[str, bytes] = {}
        self._secrets_key: tuple[frozenset[str], tuple[Any, ...]] | None = None
        self._by_port: ByIdentity[Gateway, dict[int, list[tuple[int, Any]]]] = ByIdentity()
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
        self._http: ByIdentity[Gateway, bool] = ByIdentity()
        """`_gateway_http` per Gateway: an edit at 10 000 services must not walk a gateway's 10 000 servers twice
        to learn nothing changed."""
        self._unsettled: Config | None = None
        """The config of a full translation whose edit bookkeeping (`settle`) is still to do."""

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

    def settle(self) -> None:
        """Finish what a full translation left for later: the bookkeeping only an edit needs (the footprint of
        every VirtualService, the owner of every resource; ~0.12 s at 10 000 services). The publisher calls
        this once the translation's snapshot has gone out, so a start does not wait for it; an edit that comes
        first does it then."""
        config, self._unsettled = self._unsettled, None
        if config is None:
            return
        self._finder.reset(config)
        for kind in KINDS:
            owned = self._owned[kind]
            for name in self._messages[kind]:
                owned.setdefault(_owner(kind, name), set()).add(name)

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
        if config is old_config and index is not None:
            self.changes = Changes("unchanged", {}, {}, 0)
            return
        if old_config is None or index is None or self.proxy.role != "gateway":
            self._full(config)
            return
        self.settle()
        affected = self._finder.affected(old_config, config, index)
        if affected.full:
            self._full(config)
            return
        if affected.reindex:
            new_index = build_index(config, self.options)
        else:
            new_index = patched_index(index, old_config, config, pairs=self._pairs, finder=self._finder,
                                      positions=self._positions, options=self.options)  # fmt: skip
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
            hit = memo[key] = (old, new, changed_pairs(old, new, self._lineage.positions(old, new)))
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
        # Tuples of the resources (Encoded ones made once here): edits patch these in place (_tuple).
        outputs = tuple(tuple(ms) for ms in _outputs(out))
        for kind, messages in zip(KINDS, outputs, strict=True):
            self._store(kind, messages, owners=False)
            self._order[kind] = [self._name(kind, m) for m in messages]
            self._position[kind] = {}
            before = old_bytes[kind]
            now = self._bytes[kind]
            changed[kind] = frozenset(n for n, b in now.items() if before.get(n) != b)
            removed[kind] = frozenset(before.keys() - now.keys())
        self._result = dataclasses.replace(out, **dict(zip(KINDS, outputs, strict=True)))
        self._stale, self._refs_stale, self._refs_shared = {}, False, set()  # out.references: its own dicts
        self._unsettled = config  # the finder and the owners: `settle`
        self.changes = Changes("full", changed, removed, sum(len(m) for m in self._messages.values()))

    # ----- rebuilding the affected resources

    def _rebuild(self, config: Config, index: Index, a: Affected) -> None:
        if a.reindex or a.port_services:
            self._finder.reset(config, footprints=a.reindex, port_services=a.port_services)
        translating = self._finder.translating_services
        all_listeners = a.all_listeners or bool(translating and a.ports)
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
            config=dataclasses.replace(config, gateways=gateways, services=translating),
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

    def _store(self, kind: Kind, messages: Iterable[Any], *, owners: bool = True) -> None:
        """Keep `messages` and their bytes (and SDS names); `owners`: note each one's owner too (else `settle`)."""
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
            if owners:
                owned.setdefault(_owner(kind, name), set()).add(name)


def _outputs(out: EnvoyResources) -> tuple[Sequence[Any], ...]:
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


_hostname = operator.attrgetter("hostname")
