"""A VirtualService's ``http:`` rules → Envoy routes (pilot route/route.go BuildHTTPRoutesForVirtualService).

Translated: uri / header / query / method / authority / scheme matches (``withoutHeaders`` inverted, headers
sorted by name as istiod sorts them), single and weighted destinations, ``timeout`` (istiod's default 0s: none),
``retries`` (istiod's default policy when absent), ``fault`` delay / HTTP abort, request and response header
operations on the rule and on each destination (a ``Host`` / ``:authority`` set becomes host_rewrite_literal),
``rewrite`` uri / uriRegexRewrite / authority, ``redirect`` (``derivePort`` included), ``directResponse``,
``mirror`` / ``mirrors`` with their percentages, ``corsPolicy`` (per-route config of the cors filter every
connection manager has), match ``statPrefix``, and ``delegate`` rules merged from their delegate VirtualService
(delegate.py). Not translated: exponential delays (validation rejects them), consistent-hash policies.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2

from tcpmesh.model.resources import Destination, RouteDestination, VirtualService
from tcpmesh.model.resources_http import (
    CorsPolicy,
    Fault,
    Headers,
    HTTPMatch,
    HTTPRoute,
    Redirect,
    Retry,
    StringMatch,
)
from tcpmesh.model.validate_http_parts import GRPC_STATUS_CODES
from tcpmesh.translator.delegate import merged_http_rules
from tcpmesh.translator.names import resolve_gateway_name
from tcpmesh.translator.protos import duration, pack, u32
from tcpmesh.translator.sidecar import config_metadata
from tcpmesh.translator.tcp_proxy import destination_cluster

__all__ = ["CORS_FILTER", "FAULT_FILTER", "http_routes", "is_catch_all"]

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
_DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
_PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"


def http_routes(
    vs: VirtualService, port: int, gateway: str, labels: dict[str, str], index: Any, *, is_tls: bool = False
) -> tuple[list[Any], frozenset[str]]:
    """The routes of ``vs`` for a listener ``port`` on ``gateway``: one per applicable match of each rule, in
    order; a rule without matches is one catch-all route. ``is_tls``: the server has TLS settings (RouteOptions
    IsTLS: a redirect's default scheme is then https). As BuildHTTPRoutesForVirtualService, the routes stop
    after the first catch-all: nothing after it can match. With them, the clusters they send to (``cluster``
    or ``weighted_clusters``; mirrors are not waited for)."""
    out = []
    clusters: set[str] = set()
    for rule in merged_http_rules(vs, index.config.virtual_services, index.options.domain):
        if not (rule.route or rule.redirect or rule.direct_response):
            continue
        matches: Sequence[HTTPMatch | None] = rule.match or (None,)
        for match in matches:
            if match is not None and not _applies(match, port, gateway, labels, vs.meta.namespace):
                continue
            route = _route(vs, rule, match, port, index, is_tls, clusters)
            out.append(route)
            if is_catch_all(route):
                return out, frozenset(clusters)
    return out, frozenset(clusters)


def _applies(match: HTTPMatch, port: int, gateway: str, labels: dict[str, str], vs_namespace: str) -> bool:
    """route.go TranslateRoute's port filter and sourceMatchHTTP: a match naming gateways applies on those
    (source labels are then not looked at); otherwise its source labels must be the proxy's."""
    if match.port and match.port != port:
        return False
    if match.gateways:
        return gateway in {resolve_gateway_name(g, vs_namespace) for g in match.gateways}
    return all(labels.get(k) == v for k, v in match.source_labels)


def _route(
    vs: VirtualService,
    rule: HTTPRoute,
    match: HTTPMatch | None,
    port: int,
    index: Any,
    is_tls: bool,
    clusters: set[str],
) -> Any:
    """One route; the clusters it sends to are added to ``clusters``."""
    route = rc.Route(name=rule.name if match is None or not match.name else f"{rule.name}.{match.name}")
    route.metadata.CopyFrom(config_metadata(vs))  # translateRoute: the VirtualService (root of a delegate)
    _match(route.match, match, gateway_semantics=_gateway_semantics(vs))
    if match is not None and match.stat_prefix:
        route.stat_prefix = match.stat_prefix
    authority = _headers(route, rule.headers)
    if rule.redirect is not None:
        _redirect(route.redirect, rule.redirect, port, is_tls)
    elif rule.direct_response is not None:
        route.direct_response.status = rule.direct_response.status
        body = rule.direct_response.body
        if body is not None and rule.direct_response.body_is_bytes:
            route.direct_response.body.inline_bytes = base64.b64decode(body + "=" * (-len(body) % 4), validate=False)
        elif body is not None:
            route.direct_response.body.inline_string = body
    else:
        clusters.update(_destinations(route, vs, rule, port, index, authority))
    if rule.fault is not None:
        route.typed_per_filter_config[FAULT_FILTER].CopyFrom(pack(_fault(rule.fault)))
    if rule.cors_policy is not None:
        route.typed_per_filter_config[CORS_FILTER].CopyFrom(pack(_cors(rule.cors_policy)))
    return route


def _destinations(route: Any, vs: VirtualService, rule: HTTPRoute, port: int, index: Any, authority: str) -> list[str]:
    """applyHTTPRouteDestination: the authority of a ``Host`` header set on the rule, else rewrite.authority,
    becomes host_rewrite_literal; a single destination's headers go on the route (its authority only when the
    rule set none), a weighted one's on its cluster weight. Returns the clusters the route sends to."""
    action = route.route
    gateway_semantics = _gateway_semantics(vs)
    # Gateway API semantics: an invalid backend is a 500 (HTTPRoute's spec), otherwise a 503.
    action.cluster_not_found_response_code = (
        rc.RouteAction.INTERNAL_SERVER_ERROR if gateway_semantics else rc.RouteAction.SERVICE_UNAVAILABLE
    )
    # setTimeout: none by default; the grpc-timeout header is honoured up to the same bound (0: unbounded).
    action.timeout.CopyFrom(duration(rule.timeout_ms or 0))
    action.max_grpc_timeout.CopyFrom(duration(rule.timeout_ms or 0))
    if rule.rewrite is not None:
        regex = rule.rewrite.uri_regex_rewrite
        if regex is not None:
            action.regex_rewrite.pattern.regex = regex.match
            action.regex_rewrite.substitution = regex.rewrite
        elif rule.rewrite.uri == "/" and gateway_semantics:
            # An HTTPRoute's ReplacePrefixMatch "/": remove the prefix, keeping a "/" when the whole path goes.
            prefix = route.match.path_separated_prefix
            action.regex_rewrite.pattern.regex = f"^{_quote_meta(prefix)}(/?)(.*)"
            action.regex_rewrite.substitution = "/\\2"
        elif rule.rewrite.uri:
            action.prefix_rewrite = rule.rewrite.uri
        if rule.rewrite.authority:
            authority = rule.rewrite.authority
    if authority:
        action.host_rewrite_literal = authority
    mirrors: list[tuple[Destination, Any]] = []
    if rule.mirror is not None:
        mirrors.append((rule.mirror, _mirror_percent(rule.mirror_percentage, rule.mirror_percent)))
    for m in rule.mirrors:
        if m is not None and m.destination is not None:
            mirrors.append((m.destination, _mirror_percent(m.percentage, None)))
    for destination, fraction in mirrors:
        if fraction is None:
            continue  # an explicit 0 %: istiod leaves the mirror out
        policy = action.request_mirror_policies.add(
            cluster=destination_cluster(index, vs, RouteDestination(destination=destination), port)
        )
        policy.runtime_fraction.default_value.CopyFrom(fraction)
        policy.trace_sampled.value = False
    if len(rule.route) == 1:
        (only,) = rule.route
        action.cluster = destination_cluster(index, vs, RouteDestination(destination=only.destination), port)
        sends_to = [action.cluster]
        if only.headers is not None:
            dest_authority = _headers(route, only.headers)
            if dest_authority and not action.host_rewrite_literal:
                action.host_rewrite_literal = dest_authority
    else:
        sends_to = []
        for d in rule.route:
            if d.weight <= 0:
                continue
            dest = RouteDestination(destination=d.destination, weight=d.weight)
            sends_to.append(destination_cluster(index, vs, dest, port))
            weight = action.weighted_clusters.clusters.add(name=sends_to[-1], weight=u32(d.weight))
            if d.headers is not None:
                dest_authority = _headers(weight, d.headers)
                if dest_authority:
                    weight.host_rewrite_literal = dest_authority
    retry = _retry_policy(rule.retries)
    if retry is not None:
        action.retry_policy.CopyFrom(retry)
    return sends_to


def _cors(cors: CorsPolicy) -> Any:
    """TranslateCORSPolicy: always enabled (100%); unmatched preflights forwarded unless IGNORE."""
    out = cors_pb2.CorsPolicy(
        allow_methods=",".join(cors.allow_methods),
        allow_headers=",".join(cors.allow_headers),
        expose_headers=",".join(cors.expose_headers),
    )
    out.forward_not_matching_preflights.value = cors.unmatched_preflights != "IGNORE"
    out.allow_origin_string_match.extend(_string_matcher(o) for o in cors.allow_origins)
    out.filter_enabled.default_value.numerator = 100
    out.filter_enabled.default_value.denominator = percent_pb2.FractionalPercent.HUNDRED
    if cors.allow_credentials is not None:
        out.allow_credentials.value = cors.allow_credentials
    if cors.max_age_ms is not None:
        out.max_age = str(cors.max_age_ms // 1000)
    return out


_REDIRECT_CODES = {
    0: rc.RedirectAction.MOVED_PERMANENTLY,
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def _redirect(out: Any, redirect: Redirect, listen_port: int, is_tls: bool) -> None:
    """route.go ApplyRedirect. ``derivePort: FROM_REQUEST_PORT`` is the listener's port (routes are built per
    port); a port that is the scheme's default (80 for http, 443 for https; the scheme defaults to the server's)
    is left out. A code validation admits but istiod cannot name (304...) gets 301 (istiod would emit a route
    without an action, which Envoy rejects)."""
    if redirect.uri:
        out.path_redirect = redirect.uri
    if redirect.authority:
        out.host_redirect = redirect.authority
    if redirect.scheme:
        out.scheme_redirect = redirect.scheme
    if redirect.port is not None or redirect.derive_port:
        port = redirect.port or (listen_port if redirect.derive_port == "FROM_REQUEST_PORT" else 0)
        scheme = redirect.scheme or ("https" if is_tls else "http")
        if (port, scheme) not in ((80, "http"), (443, "https")):
            out.port_redirect = port
    out.response_code = _REDIRECT_CODES.get(redirect.redirect_code, rc.RedirectAction.MOVED_PERMANENTLY)


def _string_matcher(sm: StringMatch, *, ignore_case: bool = False) -> Any:
    out = string_pb2.StringMatcher(ignore_case=ignore_case)
    if sm.kind == "exact":
        out.exact = sm.value
    elif sm.kind == "prefix":
        out.prefix = sm.value
    elif sm.kind == "regex":
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=sm.value))
    return out


def _header_matcher(name: str, sm: StringMatch | None, *, invert: bool = False) -> Any:
    """translateHeaderMatch: an empty match or the regex ``*`` only asks for presence; an inverted value match
    treats a missing header as empty (so a request without it is not excluded)."""
    out = rc.HeaderMatcher(name=name, invert_match=invert)
    if sm is None or not sm.kind or (sm.kind == "regex" and sm.value == "*"):
        out.present_match = True
    else:
        out.string_match.CopyFrom(_string_matcher(sm))
        out.treat_missing_header_as_empty = invert
    return out


def _gateway_semantics(vs: VirtualService) -> bool:
    """model.UseGatewaySemantics: a VirtualService converted from a Gateway API route."""
    return dict(vs.meta.annotations).get("internal.istio.io/route-semantics") == "gateway"


def _quote_meta(text: str) -> str:
    """Go's regexp.QuoteMeta (it escapes fewer characters than Python's re.escape)."""
    return "".join(f"\\{c}" if c in "\\.+*?()|[]{}^$" else c for c in text)


def _match(out: Any, match: HTTPMatch | None, *, gateway_semantics: bool = False) -> None:
    """translateRouteMatch: the uri becomes path / prefix / safe_regex (prefix ``/`` when absent)."""
    uri = match.uri if match is not None else None
    if uri is None or not uri.kind:
        out.prefix = "/"
    elif uri.kind == "exact":
        out.path = uri.value
    elif uri.kind == "prefix" and gateway_semantics and uri.value != "/":
        out.path_separated_prefix = uri.value.removesuffix("/")  # a Gateway API PathPrefix matches whole segments
    elif uri.kind == "prefix":
        out.prefix = uri.value
    else:
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=uri.value))
    if match is None:
        return
    if match.ignore_uri_case:
        out.case_sensitive.value = False
    headers = [_header_matcher(name, sm) for name, sm in match.headers]
    headers += [_header_matcher(name, sm, invert=True) for name, sm in match.without_headers]
    out.headers.extend(sorted(headers, key=lambda h: h.name))  # istiod: "guarantee ordering of headers"
    for pseudo, sm in ((":method", match.method), (":authority", match.authority), (":scheme", match.scheme)):
        if sm is not None:
            out.headers.append(_header_matcher(pseudo, sm))
    for name, sm in match.query_params:
        qp = out.query_parameters.add(name=name)
        if sm is None or not sm.kind:
            qp.present_match = True
        else:
            qp.string_match.CopyFrom(_string_matcher(sm))


def is_catch_all(route: Any) -> bool:
    """route.go IsCatchAllRoute: prefix (or path-separated prefix) ``/`` or the regex ``.*``, with no header or
    query condition."""
    m = route.match
    regex = m.HasField("safe_regex") and m.safe_regex.regex == ".*"
    catch = m.prefix == "/" or m.path_separated_prefix == "/" or regex
    return bool(catch and not m.headers and not m.query_parameters)


def _retry_policy(retry: Retry | None) -> Any | None:
    """retry.ConvertPolicy: istiod's default (2 attempts on connect failures and 503) without ``retries``;
    none with ``attempts: 0``; numbers in ``retryOn`` become retriable status codes."""
    if retry is not None and retry.attempts == 0:
        return None
    policy = rc.RetryPolicy(num_retries=u32(2), retry_on=_DEFAULT_RETRY_ON, host_selection_retry_max_attempts=5)
    policy.retriable_status_codes.append(503)
    policy.retry_host_predicate.add(
        name=_PREVIOUS_HOSTS, typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate())
    )
    if retry is None:
        return policy
    policy.num_retries.value = retry.attempts
    if retry.retry_on:
        words = [w.strip() for w in retry.retry_on.split(",") if w.strip()]
        codes = [int(w) for w in words if w.isdigit()]
        names = [w for w in words if not w.isdigit()]
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
        if codes and "retriable-status-codes" not in names:
            names.append("retriable-status-codes")
        policy.retry_on = ",".join(names)
    if retry.per_try_timeout_ms is not None:
        policy.per_try_timeout.CopyFrom(duration(retry.per_try_timeout_ms))
    return policy


def _per_million(value: float) -> Any:
    """translatePercentToFractionalPercent (Go's uint32 conversion truncates)."""
    return percent_pb2.FractionalPercent(
        numerator=int(value * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def _per_hundred(value: int) -> Any:
    """translateIntegerToFractionalPercent."""
    return percent_pb2.FractionalPercent(numerator=value, denominator=percent_pb2.FractionalPercent.HUNDRED)


def _mirror_percent(percentage: float | None, percent: int | None) -> Any | None:
    """MirrorPercent / MirrorPercentByPolicy: 100 % when none is given, None (no mirror) for an explicit 0."""
    if percentage is not None:
        return _per_million(percentage) if percentage > 0 else None
    if percent is not None:
        return _per_hundred(percent) if percent > 0 else None
    return _per_hundred(100)


def _fault(fault: Fault) -> Any:
    """TranslateFault: fixed delays, HTTP-status and gRPC-status aborts. As in istiod (and the API: "if left
    unspecified, no request will be delayed"), a delay without ``percentage`` takes the deprecated ``percent``, 0
    when absent, and an abort without ``percentage`` has none, which Envoy reads as 0 %."""
    out = fault_pb2.HTTPFault()
    delay = fault.delay
    if delay is not None and delay.fixed_delay_ms is not None:
        percentage = (
            _per_million(delay.percentage) if delay.percentage is not None else _per_hundred(delay.percent or 0)
        )
        out.delay.CopyFrom(
            common_fault_pb2.FaultDelay(fixed_delay=duration(delay.fixed_delay_ms), percentage=percentage)
        )
    abort = fault.abort
    if abort is not None and (abort.http_status is not None or abort.grpc_status in GRPC_STATUS_CODES):
        if abort.grpc_status is not None:
            out.abort.grpc_status = GRPC_STATUS_CODES.index(abort.grpc_status)
        elif abort.http_status is not None:
            out.abort.http_status = abort.http_status
        if abort.percentage is not None:
            out.abort.percentage.CopyFrom(_per_million(abort.percentage))
    return out


"""grpc.SupportedGRPCStatus: the gRPC status codes by name."""


def _is_internal(name: str) -> bool:
    """isInternalHeader: pseudo-headers and Host cannot be set by Envoy's header operations."""
    return name.startswith(":") or name.lower() == "host"


def _header_options(pairs: Sequence[tuple[str, str]], append: bool) -> tuple[list[Any], str]:
    """translateAppendHeaders: sorted by name, internal headers left out; the authority they set, if any."""
    authority = ""
    out = []
    action = (
        base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
        if append
        else base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    )
    for name, value in sorted(pairs, key=lambda p: p[0]):
        if name.lower() in (":authority", "host"):
            authority = value
        if _is_internal(name):
            continue
        out.append(base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value), append_action=action))
    return out, authority


def _headers(out: Any, headers: Headers | None) -> str:
    """TranslateHeadersOperations onto a route or cluster weight ``out``; returns the request authority set
    (``set`` wins over ``add``)."""
    if headers is None:
        return ""
    authority = ""
    if headers.request is not None:
        set_ops, set_authority = _header_options(headers.request.set, False)
        add_ops, add_authority = _header_options(headers.request.add, True)
        out.request_headers_to_add.extend([*set_ops, *add_ops])
        out.request_headers_to_remove.extend(n for n in headers.request.remove if not _is_internal(n))
        authority = set_authority or add_authority
    if headers.response is not None:
        set_ops, _ = _header_options(headers.response.set, False)
        add_ops, _ = _header_options(headers.response.add, True)
        out.response_headers_to_add.extend([*set_ops, *add_ops])
        out.response_headers_to_remove.extend(n for n in headers.response.remove if not _is_internal(n))
    return authority
