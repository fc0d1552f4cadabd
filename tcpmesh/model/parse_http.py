"""VirtualService ``http:`` routes → typed values (resources_http.py). Semantic rules are in validate_http.py;
this module reports only what the schema (protojson) would reject: wrong types, unknown fields, two members
of one oneof."""

from __future__ import annotations

from tcpmesh.model.reader import Reader
from tcpmesh.model.resources import Destination
from tcpmesh.model.resources_http import (
    Abort,
    CorsPolicy,
    Delay,
    Delegate,
    DirectResponse,
    Fault,
    HeaderOperations,
    Headers,
    HTTPMatch,
    HTTPRoute,
    HTTPRouteDestination,
    Mirror,
    NamedMatches,
    Redirect,
    RegexRewrite,
    Retry,
    Rewrite,
    StringMatch,
)

__all__ = ["parse_destination", "parse_http_routes", "string_match"]

_STRING_MATCH_KINDS = ("exact", "prefix", "regex")


def parse_http_routes(r: Reader) -> tuple[HTTPRoute, ...]:
    out: list[HTTPRoute] = []
    for _, h in r.objects("http"):
        if h is None:
            r.report("http", "http route may not be null")
            continue
        out.append(_route(h))
        h.finish()
    return tuple(out)


def _route(h: Reader) -> HTTPRoute:
    matches: list[HTTPMatch] = []
    for _, m in h.objects("match"):
        if m is None:
            h.report("match", "http match may not be null")
            continue
        matches.append(_match(m))
        m.finish()
    mirrors: list[Mirror | None] = []
    for _, m in h.objects("mirrors"):
        if m is None:
            mirrors.append(None)
            continue
        mirrors.append(Mirror(destination=_opt_destination(m, "destination"), percentage=_percent(m, "percentage")))
        m.finish()
    return HTTPRoute(
        name=h.string("name"),
        match=tuple(matches),
        route=_http_destinations(h),
        has_route=h.has("route"),
        redirect=_redirect(h),
        direct_response=_direct_response(h),
        delegate=_delegate(h),
        rewrite=_rewrite(h),
        timeout_ms=h.duration_ms("timeout"),
        retries=_retries(h),
        fault=_fault(h),
        mirror=_opt_destination(h, "mirror"),
        mirrors=tuple(mirrors),
        mirror_percent=h.opt_integer("mirrorPercent", proto="uint32"),
        mirror_percentage=_percent(h, "mirrorPercentage"),
        cors_policy=_cors(h),
        headers=_headers(h, "headers"),
    )


def string_match(r: Reader) -> StringMatch:
    """A StringMatch object: one of exact / prefix / regex (protojson rejects a second oneof member)."""
    present = [k for k in _STRING_MATCH_KINDS if r.has(k)]
    for extra in present[1:]:
        r.report(extra, f"only one of exact, prefix or regex may be set (already have {present[0]})")
    if not present:
        return StringMatch()
    return StringMatch(kind=present[0], value=r.string(present[0]))


def _opt_string_match(r: Reader, key: str) -> StringMatch | None:
    m = r.obj(key)
    if m is None:
        return None
    out = string_match(m)
    m.finish()
    return out


def _named_matches(r: Reader, key: str) -> NamedMatches:
    """A map of header / query parameter name → StringMatch (a null value is kept as None)."""
    holder = r.obj(key)
    if holder is None:
        return ()
    out: list[tuple[str, StringMatch | None]] = []
    for name in list(holder.data.keys()):
        if not isinstance(name, str):
            holder.report(None, f"key {name!r} must be a string")
            continue
        if holder.data.get(name) is None:
            holder.has(name)  # records the line
            out.append((name, None))
            continue
        m = holder.obj(name)
        if m is not None:
            out.append((name, string_match(m)))
            m.finish()
    holder.finish()
    return tuple(out)


def _match(m: Reader) -> HTTPMatch:
    return HTTPMatch(
        name=m.string("name"),
        uri=_opt_string_match(m, "uri"),
        scheme=_opt_string_match(m, "scheme"),
        method=_opt_string_match(m, "method"),
        authority=_opt_string_match(m, "authority"),
        headers=_named_matches(m, "headers"),
        query_params=_named_matches(m, "queryParams"),
        without_headers=_named_matches(m, "withoutHeaders"),
        ignore_uri_case=m.boolean("ignoreUriCase"),
        port=m.integer("port", proto="uint32"),
        source_labels=m.labels("sourceLabels") or (),
        gateways=m.str_list("gateways"),
        source_namespace=m.string("sourceNamespace"),
        stat_prefix=m.string("statPrefix"),
    )


def parse_destination(d: Reader) -> Destination:
    port = 0
    port_r = d.obj("port")
    if port_r is not None:
        port = port_r.integer("number", proto="uint32")
        port_r.finish()
    out = Destination(host=d.string("host"), subset=d.string("subset"), port=port)
    d.finish()
    return out


def _opt_destination(r: Reader, key: str) -> Destination | None:
    d = r.obj(key)
    return None if d is None else parse_destination(d)


def _http_destinations(h: Reader) -> tuple[HTTPRouteDestination, ...]:
    out: list[HTTPRouteDestination] = []
    for _, d in h.objects("route"):
        if d is None:
            h.report("route", "weight may not be nil")
            continue
        dest = _opt_destination(d, "destination")
        if dest is None:
            d.report(None, "destination is required")
            dest = Destination(host="")
        out.append(HTTPRouteDestination(destination=dest, weight=d.integer("weight"), headers=_headers(d, "headers")))
        d.finish()
    return tuple(out)


def _header_ops(r: Reader, key: str) -> HeaderOperations | None:
    o = r.obj(key)
    if o is None:
        return None
    out = HeaderOperations(set=o.labels("set") or (), add=o.labels("add") or (), remove=o.str_list("remove"))
    o.finish()
    return out


def _headers(r: Reader, key: str) -> Headers | None:
    h = r.obj(key)
    if h is None:
        return None
    out = Headers(request=_header_ops(h, "request"), response=_header_ops(h, "response"))
    h.finish()
    return out


def _percent(r: Reader, key: str) -> float | None:
    """istio.networking.v1.Percent: ``{value: <double>}``."""
    p = r.obj(key)
    if p is None:
        return None
    value = p.opt_number("value")
    p.finish()
    return 0.0 if value is None else value


def _fault(h: Reader) -> Fault | None:
    f = h.obj("fault")
    if f is None:
        return None
    delay = abort = None
    d = f.obj("delay")
    if d is not None:
        _one_of(d, ("fixedDelay", "exponentialDelay"))
        delay = Delay(
            fixed_delay_ms=d.duration_ms("fixedDelay"),
            exponential_delay_ms=d.duration_ms("exponentialDelay"),
            percentage=_percent(d, "percentage"),
            percent=d.opt_integer("percent"),
        )
        d.finish()
    a = f.obj("abort")
    if a is not None:
        _one_of(a, ("httpStatus", "grpcStatus", "http2Error"))
        abort = Abort(
            http_status=a.opt_integer("httpStatus"),
            grpc_status=a.string("grpcStatus") if a.has("grpcStatus") else None,
            http2_error=a.string("http2Error") if a.has("http2Error") else None,
            percentage=_percent(a, "percentage"),
        )
        a.finish()
    f.finish()
    return Fault(delay=delay, abort=abort)


def _one_of(r: Reader, keys: tuple[str, ...]) -> None:
    present = [k for k in keys if r.has(k)]
    for extra in present[1:]:
        r.report(extra, f"only one of {', '.join(keys)} may be set (already have {present[0]})")


def _retries(h: Reader) -> Retry | None:
    r = h.obj("retries")
    if r is None:
        return None
    out = Retry(
        attempts=r.integer("attempts"),
        per_try_timeout_ms=r.duration_ms("perTryTimeout"),
        retry_on=r.string("retryOn"),
        retry_remote_localities=r.opt_boolean("retryRemoteLocalities"),
        backoff_ms=r.duration_ms("backoff"),
    )
    r.ignore("retryIgnorePreviousHosts")
    r.finish()
    return out


def _rewrite(h: Reader) -> Rewrite | None:
    r = h.obj("rewrite")
    if r is None:
        return None
    regex = None
    x = r.obj("uriRegexRewrite")
    if x is not None:
        regex = RegexRewrite(match=x.string("match"), rewrite=x.string("rewrite"))
        x.finish()
    out = Rewrite(uri=r.string("uri"), authority=r.string("authority"), uri_regex_rewrite=regex)
    r.finish()
    return out


def _redirect(h: Reader) -> Redirect | None:
    r = h.obj("redirect")
    if r is None:
        return None
    _one_of(r, ("port", "derivePort"))
    out = Redirect(
        uri=r.string("uri"),
        authority=r.string("authority"),
        port=r.opt_integer("port", proto="uint32"),
        derive_port=r.enum("derivePort", ("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT")),
        scheme=r.string("scheme"),
        redirect_code=r.integer("redirectCode", proto="uint32"),
    )
    r.finish()
    return out


def _direct_response(h: Reader) -> DirectResponse | None:
    r = h.obj("directResponse")
    if r is None:
        return None
    body: str | None = None
    b = r.obj("body")
    if b is not None:
        _one_of(b, ("string", "bytes"))
        body = b.string("string") if b.has("string") else b.string("bytes")
        b.finish()
    is_bytes = b is not None and b.has("bytes") and not b.has("string")
    out = DirectResponse(
        status=r.integer("status", proto="uint32"), body=body, body_size=len(body or ""), body_is_bytes=is_bytes
    )
    r.finish()
    return out


def _delegate(h: Reader) -> Delegate | None:
    r = h.obj("delegate")
    if r is None:
        return None
    out = Delegate(name=r.string("name"), namespace=r.string("namespace"))
    r.finish()
    return out


def _cors(h: Reader) -> CorsPolicy | None:
    c = h.obj("corsPolicy")
    if c is None:
        return None
    origins: list[StringMatch] = []
    for _, o in c.objects("allowOrigins"):
        if o is None:
            c.report("allowOrigins", "allow origin may not be null")
            continue
        origins.append(string_match(o))
        o.finish()
    if c.has("allowOrigin"):
        c.report("allowOrigin", "allowOrigin is deprecated and not supported by tcpmesh; use allowOrigins")
    out = CorsPolicy(
        allow_origins=tuple(origins),
        allow_methods=c.str_list("allowMethods"),
        allow_headers=c.str_list("allowHeaders"),
        expose_headers=c.str_list("exposeHeaders"),
        max_age_ms=c.duration_ms("maxAge"),
        allow_credentials=c.opt_boolean("allowCredentials"),
        unmatched_preflights=c.enum("unmatchedPreflights", ("UNSPECIFIED", "FORWARD", "IGNORE")),
    )
    c.finish()
    return out
