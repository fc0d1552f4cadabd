"""``delegate`` HTTP rules: a root VirtualService's rule hands its traffic to the ``http:`` rules of another
VirtualService without hosts (pilot/pkg/model/virtualservice_controller.go mergeVirtualServices and
virtualservice.go MergeHTTPRoutes).

Each delegate rule becomes one rule of the root, in place of the delegating rule: its matches are merged with the
root rule's (each delegate match must be a subset of at least one root match, and is merged with every root match
it does not conflict with; a delegate rule with no such root match is dropped), and the fields it leaves unset
(rewrite, timeout, retries, fault, mirror(s), corsPolicy, headers, directResponse) come from the root rule. Names
join as ``<root>-<delegate>``. The delegate's destinations and match gateways are resolved in the delegate's
namespace, as istiod resolves short names before merging. A delegate that does not exist, has hosts, or is not
exported to the root's namespace contributes nothing (istiod logs and skips the rule). Only one level: a
delegate's own ``delegate`` rules are rejected by validation and skipped here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from tcpmesh.model.resources import Destination, VirtualService
from tcpmesh.model.resources_http import HTTPMatch, HTTPRoute, Mirror, NamedMatches, StringMatch
from tcpmesh.translator.names import resolve_gateway_name, resolve_short_name

__all__ = ["delegate_of", "merged_http_rules", "merges"]


def merged_http_rules(vs: VirtualService, candidates: Iterable[VirtualService], domain: str) -> tuple[HTTPRoute, ...]:
    """The ``http:`` rules of ``vs`` with every ``delegate`` rule replaced by its merged delegate rules
    (``candidates``: the config's VirtualServices; only read when ``vs`` delegates)."""
    if not any(rule.delegate is not None for rule in vs.http):
        return vs.http
    delegates = {(d.meta.namespace, d.meta.name): d for d in candidates if not d.hosts}
    out: list[HTTPRoute] = []
    for rule in vs.http:
        if rule.delegate is None:
            out.append(rule)
            continue
        delegate = delegate_of(vs, rule, delegates)
        if isinstance(delegate, str):
            continue  # istiod logs it and skips the rule
        root = _resolved(rule, vs.meta.namespace, domain)  # both sides resolved, as istiod compares them
        for sub in delegate.http:
            if sub.delegate is not None:
                continue  # one level only (validation rejects it)
            merged = _merge_rule(root, _resolved(sub, delegate.meta.namespace, domain))
            if merged is not None:
                out.append(merged)
    return tuple(out)


def delegate_of(
    vs: VirtualService, rule: HTTPRoute, delegates: Mapping[tuple[str, str], VirtualService]
) -> VirtualService | str:
    """The delegate ``rule`` of root ``vs`` names (``delegates``: the VirtualServices without hosts by namespace
    and name), or why it contributes nothing, in istiod's log wording."""
    assert rule.delegate is not None
    namespace = rule.delegate.namespace or vs.meta.namespace
    delegate = delegates.get((namespace, rule.delegate.name))
    name = f"{namespace}/{rule.delegate.name}"
    if delegate is None:
        return f"delegate virtual service {name} of {vs.meta.key} not found"
    if not _exported_to(delegate, vs.meta.namespace):
        return f"delegate virtual service {name} of {vs.meta.key} is not exported to {vs.meta.namespace}"
    return delegate


def merges(root: HTTPRoute, root_namespace: str, leaf: HTTPRoute, leaf_namespace: str) -> bool:
    """Whether the delegate rule ``leaf`` survives the merge with the root rule (its matches fit the root's)."""
    return _merge_matches(_matches_in(root, root_namespace), _matches_in(leaf, leaf_namespace)) is not None


def _matches_in(rule: HTTPRoute, namespace: str) -> tuple[HTTPMatch, ...]:
    """The rule's matches with their gateways resolved in ``namespace``."""
    return tuple(
        dataclasses.replace(m, gateways=tuple(resolve_gateway_name(g, namespace) for g in m.gateways))
        for m in rule.match
    )


def _exported_to(vs: VirtualService, namespace: str) -> bool:
    """exportTo visibility: none written is public (meshConfig's default); ``.`` is the VS's own namespace."""
    if not vs.export_to:
        return True
    seen = {vs.meta.namespace if e == "." else e for e in vs.export_to}
    return "*" in seen or namespace in seen


def _resolved(rule: HTTPRoute, namespace: str, domain: str) -> HTTPRoute:
    """ResolveVirtualServiceShortnames for the delegate's rule: destination hosts and match gateways."""

    def dest(d: Destination) -> Destination:
        return dataclasses.replace(d, host=resolve_short_name(d.host, namespace, domain))

    def mirror(m: Mirror | None) -> Mirror | None:
        if m is None or m.destination is None:
            return m
        return dataclasses.replace(m, destination=dest(m.destination))

    return dataclasses.replace(
        rule,
        match=tuple(
            dataclasses.replace(
                m, gateways=tuple(g if g == "mesh" else resolve_gateway_name(g, namespace) for g in m.gateways)
            )
            for m in rule.match
        ),
        route=tuple(dataclasses.replace(r, destination=dest(r.destination)) for r in rule.route),
        mirror=dest(rule.mirror) if rule.mirror is not None else None,
        mirrors=tuple(mirror(m) for m in rule.mirrors),
    )


def _join(root: str, leaf: str) -> str:
    if not leaf:
        return root
    return f"{root}-{leaf}" if root else leaf


def _merge_rule(root: HTTPRoute, leaf: HTTPRoute) -> HTTPRoute | None:
    """mergeHTTPRoute: None when the delegate rule's matches conflict with the root's."""
    matches = _merge_matches(root.match, leaf.match)
    if matches is None:
        return None  # "HTTPMatchRequests conflict"
    return dataclasses.replace(
        leaf,
        match=matches,
        name=_join(root.name, leaf.name),
        rewrite=leaf.rewrite if leaf.rewrite is not None else root.rewrite,
        direct_response=leaf.direct_response if leaf.direct_response is not None else root.direct_response,
        timeout_ms=leaf.timeout_ms if leaf.timeout_ms is not None else root.timeout_ms,
        retries=leaf.retries if leaf.retries is not None else root.retries,
        fault=leaf.fault if leaf.fault is not None else root.fault,
        mirror=leaf.mirror if leaf.mirror is not None else root.mirror,
        mirror_percent=leaf.mirror_percent if leaf.mirror_percent is not None else root.mirror_percent,
        mirror_percentage=leaf.mirror_percentage if leaf.mirror_percentage is not None else root.mirror_percentage,
        cors_policy=leaf.cors_policy if leaf.cors_policy is not None else root.cors_policy,
        mirrors=leaf.mirrors or root.mirrors,
        headers=leaf.headers if leaf.headers is not None else root.headers,
    )


def _merge_matches(root: Sequence[HTTPMatch], leaf: Sequence[HTTPMatch]) -> tuple[HTTPMatch, ...] | None:
    """mergeHTTPMatchRequests: every delegate match is merged with each root match it does not conflict with;
    one that finds none is a conflict (None)."""
    if not root:
        return tuple(leaf)
    if not leaf:
        return tuple(root)
    out: list[HTTPMatch] = []
    for sub in leaf:
        found = False
        for top in root:
            if _conflict(top, sub):
                continue
            out.append(_merge_match(top, sub))
            found = True
        if not found:
            return None
    return tuple(out) or None


def _merged_named(root: NamedMatches, leaf: NamedMatches) -> NamedMatches:
    """maps.MergeCopy: the root's entries with the delegate's on top (root order, then the delegate's new keys)."""
    merged = dict(root)
    merged.update(leaf)
    return tuple(merged.items())


def _merge_match(root: HTTPMatch, leaf: HTTPMatch) -> HTTPMatch:
    """mergeHTTPMatchRequest: the delegate's match, its unset parts taken from the root's."""
    return dataclasses.replace(
        leaf,
        name=_join(root.name, leaf.name),
        uri=leaf.uri if leaf.uri is not None else root.uri,
        scheme=leaf.scheme if leaf.scheme is not None else root.scheme,
        method=leaf.method if leaf.method is not None else root.method,
        authority=leaf.authority if leaf.authority is not None else root.authority,
        headers=_merged_named(root.headers, leaf.headers),
        without_headers=_merged_named(root.without_headers, leaf.without_headers),
        query_params=_merged_named(root.query_params, leaf.query_params),
        port=leaf.port or root.port,
        source_labels=tuple(sorted({**dict(root.source_labels), **dict(leaf.source_labels)}.items())),
        source_namespace=leaf.source_namespace or root.source_namespace,
        gateways=leaf.gateways or root.gateways,
        stat_prefix=leaf.stat_prefix or root.stat_prefix,
    )


def _conflict(root: HTTPMatch, leaf: HTTPMatch) -> bool:
    """hasConflict: the delegate's match is not within the root's."""
    pairs = ((root.uri, leaf.uri), (root.scheme, leaf.scheme), (root.method, leaf.method))
    if any(_string_conflict(a, b) for a, b in (*pairs, (root.authority, leaf.authority))):
        return True
    for mine, theirs in (
        (root.headers, leaf.headers),
        (root.without_headers, leaf.without_headers),
        (root.query_params, leaf.query_params),
    ):
        top = dict(mine)
        if any(_string_conflict(top.get(k), v) for k, v in theirs):
            return True
    if root.ignore_uri_case != leaf.ignore_uri_case:
        return True
    if root.port and leaf.port and root.port != leaf.port:
        return True
    if root.source_namespace and leaf.source_namespace != root.source_namespace:
        return True
    labels = dict(root.source_labels)
    if any(k in labels and labels[k] != v for k, v in leaf.source_labels):
        return True
    return bool(
        root.gateways
        and leaf.gateways
        and (len(root.gateways) < len(leaf.gateways) or not set(leaf.gateways) <= set(root.gateways))
    )


def _string_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """stringMatchConflict: the leaf must narrow the root (an exact within a prefix, a longer prefix, the same
    exact); a regex on either side only goes with nothing on the other; a root with no kind conflicts."""
    if root is None or leaf is None:
        return False
    if root.kind == "regex" and root.value and leaf.kind in ("regex", "prefix", "exact") and leaf.value:
        return True
    if leaf.kind == "regex" and leaf.value and root.kind in ("regex", "prefix", "exact") and root.value:
        return True
    if root.kind == "exact" and root.value:
        if leaf.kind == "prefix" and leaf.value:
            return True
        return not (leaf.kind == "exact" and leaf.value == root.value)
    if root.kind == "prefix" and root.value and leaf.kind in ("prefix", "exact") and leaf.value:
        return not leaf.value.startswith(root.value)
    return True
