"""VirtualService ``http:`` admission rules: ``validateHTTPRoute`` and its parts (istio/istio
``pkg/config/validation/virtualservice.go``, ``validation.go``, ``agent/validation.go`` ValidateHTTPRetry,
``header_value_validator.go``) and ``analyzeUnreachableHTTPRules`` without the prefix-overlap analysis.

Messages are istiod's; each problem is reported at the field it concerns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from tcpmesh.model.hostnames import go_quote, is_dns1123_label, validate_port, validate_wildcard_domain
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import Destination, VirtualService
from tcpmesh.model.resources_http import (
    Headers,
    HTTPMatch,
    HTTPRoute,
    HTTPRouteDestination,
    NamedMatches,
)
from tcpmesh.model.validate_common import Reporter, validate_labels
from tcpmesh.model.validate_http_parts import (
    TCHARS,
    http_status_error,
    string_match_error,
    string_match_regexp_error,
    validate_cors,
    validate_fault,
    validate_redirect,
    validate_retries,
    validate_rewrite,
)
from tcpmesh.model.validate_routes import is_gateway, validate_gateway_names, validate_subset_name

__all__ = ["validate_http_routes"]

_PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
_HEADER_VALUE = re.compile("^[^\u0000-\u0008\u000a-\u001f\u007f]*$")
_JWT_CLAIM_PREFIX = "@request.auth.claims"
_KB, _MB = 1024, 1024 * 1024


def validate_http_routes(vs: VirtualService) -> list[Problem]:
    """Every ``spec.http[i]`` rule, then the unreachable-rule warnings (validate_routes.py has the rest of
    ValidateVirtualService)."""
    r = Reporter(vs.meta)
    if not (vs.gateways and is_gateway(vs)):
        for i, route in enumerate(vs.http):
            for j, m in enumerate(route.match):
                for key, named in (("headers", m.headers), ("withoutHeaders", m.without_headers)):
                    for name, _ in named:
                        if name.startswith(_JWT_CLAIM_PREFIX):
                            r.err(
                                f"spec.http[{i}].match[{j}].{key}.{name}",
                                f"JWT claim based routing (key: {name}) is only supported for gateway, "
                                f"found no gateways: [{' '.join(vs.gateways)}]",
                            )
    delegate = not vs.hosts
    for i, route in enumerate(vs.http):
        _route(r, f"spec.http[{i}]", route, delegate=delegate)
    _unreachable(r, vs.http)
    return r.problems


def _route(r: Reporter, path: str, route: HTTPRoute, *, delegate: bool) -> None:
    _conflicts(r, path, route, delegate=delegate)
    _matches(r, path, route.match)
    _header_ops(r, f"{path}.headers", route.headers)
    if route.cors_policy is not None:
        validate_cors(r, f"{path}.corsPolicy", route.cors_policy)
    if route.fault is not None:
        validate_fault(r, f"{path}.fault", route.fault)
    if route.mirror_percent is not None:
        if route.mirror_percent > 100:
            r.err(
                f"{path}.mirrorPercent", f"mirror_percent must have a max value of 100 (it has {route.mirror_percent})"
            )
        r.warn(f"{path}.mirrorPercent", 'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead')
    if route.mirror_percentage is not None:
        value = route.mirror_percentage
        if value > 100:
            r.err(f"{path}.mirrorPercentage", f"mirror_percentage must have a max value of 100 (it has {value:f})")
        if value < 0:
            r.err(f"{path}.mirrorPercentage", f"mirror_percentage must have a min value of 0 (it has {value:f})")
    if route.mirror is not None:
        _destination(r, f"{path}.mirror", route.mirror)
    _mirrors(r, path, route)
    if route.redirect is not None:
        validate_redirect(r, f"{path}.redirect", route.redirect)
    if route.direct_response is not None:
        at = f"{path}.directResponse"
        if route.direct_response.body_size > _MB:
            r.err(f"{at}.body", "large direct_responses may impact control plane performance, must be less than 1MB")
        elif route.direct_response.body_size > 100 * _KB:
            r.warn(f"{at}.body", "large direct_responses may impact control plane performance")
        r.err(f"{at}.status", http_status_error(route.direct_response.status))
    if route.retries is not None:
        validate_retries(r, f"{path}.retries", route.retries)
    if route.rewrite is not None:
        validate_rewrite(r, f"{path}.rewrite", route.rewrite)
    _validate_authority_rewrite(r, path, route)
    _destinations(r, f"{path}.route", route.route)
    # The timeout's duration rules (>= 1ms, ms precision) are applied when it is parsed.


def _conflicts(r: Reporter, path: str, route: HTTPRoute, *, delegate: bool) -> None:
    """validateHTTPRouteConflict."""
    if route.delegate is not None and not delegate:
        if route.redirect is not None:
            r.err(f"{path}.redirect", f"root HTTP route {route.name} must not specify redirect")
        if route.has_route:
            r.err(f"{path}.route", f"root HTTP route {route.name} must not specify route")
        return
    if delegate and route.delegate is not None:
        r.err(f"{path}.delegate", "delegate HTTP route cannot contain delegate")
    if route.redirect is not None:
        if route.route:
            r.err(path, "HTTP route cannot contain both route and redirect")
        if route.fault is not None:
            r.err(path, "HTTP route cannot contain both fault and redirect")
        if route.rewrite is not None:
            r.err(path, "HTTP route rule cannot contain both rewrite and redirect")
        if route.direct_response is not None:
            r.err(path, "HTTP route rule cannot contain both direct_response and redirect")
    elif route.direct_response is not None:
        if route.route:
            r.err(path, "HTTP route cannot contain both route and direct_response")
        if route.fault is not None:
            r.err(path, "HTTP route cannot contain both fault and direct_response")
        if route.rewrite is not None:
            r.err(path, "HTTP route rule cannot contain both rewrite and direct_response")
    elif not route.route:
        r.err(path, "HTTP route, redirect or direct_response is required")
    if route.mirror is not None and route.mirrors:
        r.err(path, "HTTP route cannot contain both mirror and mirrors")


# --- matches ------------------------------------------------------------------------------------


def _matches(r: Reporter, path: str, matches: Sequence[HTTPMatch]) -> None:
    """validateHTTPRouteMatchRequest."""
    for j, m in enumerate(matches):
        at = f"{path}.match[{j}]"
        _named(r, f"{at}.headers", m.headers, "headers", null="header match {} cannot be null")
        _named(r, f"{at}.withoutHeaders", m.without_headers, "withoutHeaders", null=None)
        # uri allows an empty prefix (Envoy's route match does); scheme / method / authority do not.
        if m.uri is not None:
            r.err(f"{at}.uri", string_match_regexp_error(m.uri, "uri"))
        for key, sm in (("scheme", m.scheme), ("method", m.method), ("authority", m.authority)):
            if sm is not None:
                r.err(f"{at}.{key}", string_match_error(sm, key))
        for name, qp in m.query_params:
            if qp is not None:
                r.err(f"{at}.queryParams.{name}", string_match_error(qp, "queryParams"))
        if m.port != 0:
            r.err(f"{at}.port", validate_port(m.port))
        validate_labels(r, f"{at}.sourceLabels", m.source_labels)
        validate_gateway_names(r, f"{at}.gateways", m.gateways)
        if m.source_namespace and not is_dns1123_label(m.source_namespace):
            r.err(f"{at}.sourceNamespace", f"sourceNamespace match {m.source_namespace} is invalid")


def _named(r: Reporter, path: str, named: NamedMatches, where: str, *, null: str | None) -> None:
    for name, sm in named:
        at = f"{path}.{name}"
        if sm is None and null is not None:
            r.err(at, null.format(name))
        r.err(at, _header_name_or_claim(name))
        # withoutHeaders: a regex of "*" is not RE2 but "present" (translated as present_match).
        if sm is not None and not (where == "withoutHeaders" and sm.kind == "regex" and sm.value == "*"):
            r.err(at, string_match_error(sm, where))


def _header_name_or_claim(name: str) -> str | None:
    """ValidateHTTPHeaderNameOrJwtClaimRoute."""
    if not name:
        return "header name cannot be empty"
    if name.startswith(_JWT_CLAIM_PREFIX) or name in _PSEUDO_HEADERS:
        return None
    if not TCHARS.match(name):
        return f"header name {name} is not a valid header name"
    return None


# --- headers ------------------------------------------------------------------------------------


def _header_ops(r: Reporter, path: str, headers: Headers | None) -> None:
    if headers is None:
        return
    if headers.request is not None:
        at = f"{path}.request"
        for op in ("add", "set"):
            for name, value in getattr(headers.request, op):
                r.err(f"{at}.{op}.{name}", _with_authority_name(name))
                r.err(f"{at}.{op}.{name}", _header_value(value))
        for k, name in enumerate(headers.request.remove):
            r.err(f"{at}.remove[{k}]", _operation_name(name))
    if headers.response is not None:
        at = f"{path}.response"
        for op in ("add", "set"):
            for name, value in getattr(headers.response, op):
                r.err(f"{at}.{op}.{name}", _operation_name(name))
                r.err(f"{at}.{op}.{name}", _header_value(value))
        for k, name in enumerate(headers.response.remove):
            r.err(f"{at}.remove[{k}]", _operation_name(name))


def _is_internal(name: str) -> bool:
    return name.startswith(":") or name.lower() == "host"


def _is_authority(name: str) -> bool:
    return name.lower() in (":authority", "host")


def _with_authority_name(name: str) -> str | None:
    """ValidateHTTPHeaderWithAuthorityOperationName."""
    if not name:
        return "header name cannot be empty"
    if _is_internal(name) and not _is_authority(name):
        return f'invalid header {go_quote(name)}: header cannot have ":" prefix'
    return None


def _operation_name(name: str) -> str | None:
    """ValidateHTTPHeaderOperationName."""
    if not name:
        return "header name cannot be empty"
    if name.lower() == "host":
        return f"invalid header {go_quote(name)}: cannot set Host header"
    if _is_internal(name):
        return f'invalid header {go_quote(name)}: header cannot have ":" prefix'
    return None


def _header_value(value: str) -> str | None:
    """ValidateHTTPHeaderValue: no control characters and Envoy's %VAR% syntax (literal and variable states
    of header_value_validator.go; argument lists are accepted as written)."""
    if not _HEADER_VALUE.match(value):
        return f"header value configuration {value} is invalid"
    pos, in_variable = 0, False
    while pos < len(value):
        ch = value[pos]
        if not in_variable and ch == "%":
            if pos + 1 >= len(value):
                return "header value configuration: invalid header configuration. Un-escaped %"
            if value[pos + 1] == "%":
                pos += 1
            else:
                in_variable = True
        elif in_variable and ch == "%":
            in_variable = False
        pos += 1
    if in_variable:
        return f"header value configuration: invalid header configuration. Un-terminated variable expression '{value}'"
    return None


def _validate_authority_rewrite(r: Reporter, path: str, route: HTTPRoute) -> None:
    """validateAuthorityRewrite: the authority may be rewritten in one place only."""
    current = route.rewrite.authority if route.rewrite is not None else ""
    request = route.headers.request if route.headers is not None else None
    if request is None:
        return
    for op in ("set", "add"):
        for name, value in getattr(request, op):
            if not _is_authority(name):
                continue
            if current:
                r.err(
                    f"{path}.headers.request.{op}.{name}",
                    f"authority header cannot be set multiple times: have {go_quote(current)}, "
                    f"attempting to set {go_quote(value)}",
                )
                return
            current = value


# --- route parts --------------------------------------------------------------------------------


def _destination(r: Reporter, path: str, dest: Destination) -> None:
    """validateDestination."""
    if dest.host == "*":
        r.err(f"{path}.host", "invalid destination host *")
    else:
        r.err(f"{path}.host" if r.has(f"{path}.host") else path, validate_wildcard_domain(dest.host))
    if dest.subset:
        r.err(f"{path}.subset", validate_subset_name(dest.subset))
    if r.has(f"{path}.port"):
        r.err(f"{path}.port.number", validate_port(dest.port))


def _destinations(r: Reporter, path: str, routes: Sequence[HTTPRouteDestination]) -> None:
    """validateHTTPRouteDestinations: per-destination headers, destination, weight >= 0, not all 0 when split."""
    total = 0
    for k, rd in enumerate(routes):
        at = f"{path}[{k}]"
        _header_ops(r, f"{at}.headers", rd.headers)
        if r.has(f"{at}.destination"):  # a missing one is reported by the parser
            _destination(r, f"{at}.destination", rd.destination)
        if rd.weight < 0:
            r.err(f"{at}.weight", f"weight {rd.weight} < 0")
        total += rd.weight
    if len(routes) > 1 and total == 0:
        r.err(path, "total destination weight = 0")


def _mirrors(r: Reporter, path: str, route: HTTPRoute) -> None:
    """validateHTTPMirrors."""
    for k, mirror in enumerate(route.mirrors):
        at = f"{path}.mirrors[{k}]"
        if mirror is None:
            r.err(at, "mirror cannot be null")
            continue
        if mirror.destination is None:
            r.err(at, "destination is required for mirrors")
            continue
        _destination(r, f"{at}.destination", mirror.destination)
        if mirror.percentage is not None:
            value = mirror.percentage
            if value > 100:
                r.err(f"{at}.percentage", f"mirror percentage must have a max value of 100 (it has {value:f})")
            if value < 0:
                r.err(f"{at}.percentage", f"mirror percentage must have a min value of 0 (it has {value:f})")


# --- unreachable rules --------------------------------------------------------------------------


def _unreachable(r: Reporter, routes: Sequence[HTTPRoute]) -> None:
    """analyzeUnreachableHTTPRules: rules after a match-all rule, and matches equal (name aside) to an earlier
    one. istiod's prefix-overlap analysis (genMatchHTTPRoutes / coveredValidation) is not done."""
    seen: dict[HTTPMatch, int] = {}
    empty_at = -1
    for i, route in enumerate(routes):
        at = f"spec.http[{i}]"
        name = go_quote(route.name) if route.name else f"#{i}"
        if not route.match:
            if empty_at >= 0:
                r.warn(at, f"virtualService rule {name} not used (only the last rule can have no matches)")
            empty_at = i
            continue
        duplicates = 0
        for j, match in enumerate(route.match):
            if empty_at >= 0:
                r.warn(at, f"virtualService rule {name} not used (route without matches defined before)")
                continue
            key = _unnamed(match)
            if key in seen:
                first = seen[key]
                first_name = go_quote(routes[first].name) if routes[first].name else f"#{first}"
                match_name = go_quote(match.name) if match.name else f"#{j}"
                r.warn(
                    f"{at}.match[{j}]",
                    f"virtualService rule {name} match {match_name} is not used (duplicate/overlapping match in rule "
                    f"{first_name})",
                )
                duplicates += 1
                continue
            seen[key] = i
        if duplicates == len(route.match):
            r.warn(at, f"virtualService rule {name} not used (all matches used by prior rules)")


def _unnamed(match: HTTPMatch) -> HTTPMatch:
    return replace(match, name="") if match.name else match
