"""Index patching: an edit that keeps every key of the index (a weight, a port, a DestinationRule's policy)
replaces the changed resources in the previous index instead of rebuilding it from the whole config."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Any, TypeVar

from tcpmesh.model.config import Config
from tcpmesh.model.resources import Resource
from tcpmesh.translator.affected import ChangeFinder, Pairs
from tcpmesh.translator.drain import drain_targets
from tcpmesh.translator.identity import Positions, position_of
from tcpmesh.translator.index import Index
from tcpmesh.translator.names import resolve_short_name
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.services import MeshService, services_of
from tcpmesh.translator.workloads import Workload, workloads_of

__all__ = ["patched_index"]

S = TypeVar("S", bound=Sequence[Any])


def patched_index(
    index: Index,
    old: Config,
    new: Config,
    *,
    pairs: Pairs,
    finder: ChangeFinder,
    positions: Positions,
    options: TranslateOptions,
) -> Index:
    """`index` (of `old`) patched for `new`, whose edit keeps every key of the index (same names, hosts,
    gateways and labels): the changed resources replaced where they are, the unchanged parts shared."""
    vs_by_gateway = index._vs_by_gateway
    memo = index._vs_by_gateway_port
    drains = index._drains
    for vs_old, vs_new in pairs(old.virtual_services, new.virtual_services):
        assert vs_old is not None
        assert vs_new is not None
        targets = drain_targets(vs_new, options.domain)
        if targets or vs_old.meta.key in drains:
            drains = {k: v for k, v in drains.items() if k != vs_old.meta.key}
            if targets:
                drains[vs_new.meta.key] = targets
        key = (vs_old.meta.namespace, vs_old.meta.name)
        finder.drop(key)
        finder.add(vs_new)
        if vs_by_gateway is index._vs_by_gateway:
            vs_by_gateway = dict(vs_by_gateway)
        for gw in dict.fromkeys(index._vs_gateways[vs_old.meta.key]):
            bound = list(vs_by_gateway[gw])
            bound[position_of(bound, vs_old)] = vs_new
            vs_by_gateway[gw] = bound
        if finder.footprint(vs_old).ports != finder.ports_of(key) and memo is index._vs_by_gateway_port:
            memo = {}
    rules_by_host = index._rules_by_host
    wildcard = index._wildcard_rules
    for dr_old, dr_new in pairs(old.destination_rules, new.destination_rules):
        assert dr_old is not None
        assert dr_new is not None
        host = resolve_short_name(dr_old.host, dr_old.meta.namespace, options.domain)
        if host.startswith("*"):
            wildcard = [(h, dr_new if _same(dr, dr_old) else dr) for h, dr in wildcard]
        else:
            if rules_by_host is index._rules_by_host:
                rules_by_host = dict(rules_by_host)
            rules_by_host[host] = [dr_new if _same(dr, dr_old) else dr for dr in rules_by_host[host]]
    services = index.services
    by_host = index._by_host
    for svc_old, svc_new in pairs(old.services, new.services):
        assert svc_old is not None
        assert svc_new is not None
        hostname = f"{svc_old.meta.name}.{svc_old.meta.namespace}.svc.{options.domain}"
        one_old = services_of(Config(services=(svc_old,)), options.domain)[0]
        one_new = services_of(Config(services=(svc_new,)), options.domain)[0]
        position = positions.find(services, (one_old.hostname, one_old.namespace), _service_key)
        if position is not None and services[position] == one_old:
            listed = list(services)
            listed[position] = one_new
            services = positions.moved(services, tuple(listed))
            if by_host.get(hostname) == one_old:
                if by_host is index._by_host:
                    by_host = dict(by_host)
                by_host[hostname] = one_new
    workloads = index.workloads
    by_label = index._workloads_by_label
    by_namespace = index._workloads_by_namespace
    for we_old, we_new in pairs(old.workload_entries, new.workload_entries):
        assert we_old is not None
        assert we_new is not None
        w_old = workloads_of(Config(workload_entries=(we_old,)), options.pod_network)[0]
        w_new = workloads_of(Config(workload_entries=(we_new,)), options.pod_network)[0]
        workloads = _replaced(positions, workloads, w_old, w_new)
        if by_namespace is index._workloads_by_namespace:
            by_namespace = dict(by_namespace)
        by_namespace[w_old.namespace] = _replaced(positions, by_namespace[w_old.namespace], w_old, w_new)
        if by_label is index._workloads_by_label:
            by_label = dict(by_label)
        for k, v in w_old.labels:
            key3 = (w_old.namespace, k, v)
            by_label[key3] = _replaced(positions, by_label[key3], w_old, w_new)
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


def _replaced(positions: Positions, items: S, old: Workload, new: Workload) -> S:
    """``items`` (a list or tuple of workloads) with ``old`` replaced by ``new``, at the same position."""
    position = positions.find(items, _workload_key(old), _workload_key)
    if position is None or items[position] != old:
        raise LookupError(f"workload {old.namespace}/{old.name} is not indexed")
    listed = list(items)
    listed[position] = new
    out: Any = tuple(listed) if isinstance(items, tuple) else listed
    moved: S = positions.moved(items, out)
    return moved


def _same(a: Resource, b: Resource) -> bool:
    """The same resource (kind, namespace, name): the index may hold an equal object from an earlier Config."""
    return a.meta.kind == b.meta.kind and a.meta.namespace == b.meta.namespace and a.meta.name == b.meta.name


def _service_key(s: MeshService) -> Hashable:
    return (s.hostname, s.namespace)


def _workload_key(w: Workload) -> Hashable:
    return (w.kind, w.namespace, w.name)
