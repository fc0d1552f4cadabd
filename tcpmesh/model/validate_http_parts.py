"""Parts of an HTTP route checked on their own (istio/istio ``pkg/config/validation``): string matches and
RE2 regexes, fault injection, CORS, retries (agent ValidateHTTPRetry), rewrite and redirect."""

from __future__ import annotations

import re
from http import HTTPStatus

from tcpmesh.model.hostnames import go_quote, validate_port
from tcpmesh.model.resources_http import Abort, CorsPolicy, Delay, Fault, Redirect, Retry, Rewrite, StringMatch
from tcpmesh.model.validate_common import Reporter

__all__ = [
    "GRPC_STATUS_CODES",
    "TCHARS",
    "http_status_error",
    "string_match_error",
    "string_match_regexp_error",
    "validate_cors",
    "validate_fault",
    "validate_redirect",
    "validate_retries",
    "validate_rewrite",
    "validate_string_regexp",
]

TCHARS = re.compile(r"^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$")
"""RFC 7230 token characters: a valid header name."""
_CORS_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
GRPC_STATUS_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""grpc.SupportedGRPCStatus, in code order (OK is 0): what an abort's ``grpcStatus`` may name."""


def string_match_error(sm: StringMatch, where: str) -> str | None:
    """validateStringMatch: a prefix must not be empty; a regex must compile."""
    if sm.kind == "prefix" and not sm.value:
        return f"{go_quote(where)}: prefix string match should not be empty"
    return string_match_regexp_error(sm, where)


def string_match_regexp_error(sm: StringMatch, where: str) -> str | None:
    if sm.kind != "regex":
        return None
    if not sm.value:
        return f"{go_quote(where)}: regex string match should not be empty"
    return validate_string_regexp(sm.value, where)


def validate_string_regexp(regex: str, where: str) -> str | None:
    """validateStringRegexp: at most 1024 characters and compiling. Python's ``re`` stands in for Go's RE2; the
    constructs only one of them accepts (backreferences, lookarounds) are rejected as RE2 would."""
    if len(regex) > 1024:
        return f"{go_quote(where)}: regex is too large, max length allowed is 1024"
    error = None
    if re.search(r"\(\?[=!<]|\\[1-9]", regex):
        error = "invalid or unsupported Perl syntax"
    else:
        try:
            re.compile(regex)
        except re.error as e:
            error = f"error parsing regexp: {e}"
    if error is None:
        return None
    return f"{go_quote(where)}: {error}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"


def _percentage(r: Reporter, path: str, value: float | None) -> None:
    """validatePercentage."""
    if value is not None and (value < 0.0 or value > 100.0 or 0.0 < value < 0.0001):
        r.err(path, f"percentage {_go_float(value)} is neither 0.0, nor in range [0.0001, 100.0]")


def _go_float(value: float) -> str:
    """Go's %v of a float64: integers without a decimal point."""
    return str(int(value)) if value == int(value) else repr(value)


def validate_fault(r: Reporter, path: str, fault: Fault) -> None:
    """validateHTTPFaultInjection."""
    if fault.abort is None and fault.delay is None:
        r.err(path, "HTTP fault injection must have an abort and/or a delay")
    if fault.abort is not None:
        _abort(r, f"{path}.abort", fault.abort)
    if fault.delay is not None:
        _delay(r, f"{path}.delay", fault.delay)


def _abort(r: Reporter, path: str, abort: Abort) -> None:
    _percentage(r, f"{path}.percentage", abort.percentage)
    if abort.grpc_status is not None:
        if abort.grpc_status not in GRPC_STATUS_CODES:
            r.err(
                f"{path}.grpcStatus",
                f"gRPC status {go_quote(abort.grpc_status)} is not supported. See "
                "https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, "
                "for example 'NOT_FOUND'",
            )
    elif abort.http2_error is not None:
        r.err(f"{path}.http2Error", "HTTP/2 abort fault injection not supported yet")
    elif abort.http_status is not None:
        r.err(f"{path}.httpStatus", http_status_error(abort.http_status))
    else:
        r.warn(path, "abort configured, but error type not set")


def http_status_error(status: int) -> str | None:
    if status < 200 or status > 600:
        return f"HTTP status {status} is not in range 200-599"
    return None


def _delay(r: Reporter, path: str, delay: Delay) -> None:
    _percentage(r, f"{path}.percentage", delay.percentage)
    if delay.percent is not None and not 0 <= delay.percent <= 100:
        r.err(f"{path}.percent", f"percentage {delay.percent} is not in range 0..100")
    if delay.exponential_delay_ms is not None:
        r.err(f"{path}.exponentialDelay", "exponentialDelay not supported yet")


def validate_cors(r: Reporter, path: str, cors: CorsPolicy) -> None:
    """validateCORSPolicy (maxAge's millisecond rules are applied when it is parsed)."""
    for k, origin in enumerate(cors.allow_origins):
        at = f"{path}.allowOrigins[{k}]"
        if not origin.value:
            r.err(at, f"'{origin.value}' is not a valid match type for CORS allow origins")
        else:
            r.err(at, string_match_regexp_error(origin, "corsPolicy.allowOrigins"))
    for k, method in enumerate(cors.allow_methods):
        if method not in _CORS_METHODS:
            r.err(f"{path}.allowMethods[{k}]", f"{go_quote(method)} is not a supported HTTP method")
    for key, names in (("allowHeaders", cors.allow_headers), ("exposeHeaders", cors.expose_headers)):
        for k, name in enumerate(names):
            if not name:
                r.err(f"{path}.{key}[{k}]", "header name cannot be empty")
            elif name != "*" and not TCHARS.match(name):
                r.err(f"{path}.{key}[{k}]", f"header name {name} is not a valid header name")
    if cors.max_age_ms is not None and cors.max_age_ms % 1000:
        r.err(f"{path}.maxAge", "max_age duration is accurate only to seconds precision")


def validate_retries(r: Reporter, path: str, retry: Retry) -> None:
    """ValidateHTTPRetry (perTryTimeout / backoff duration rules are applied when they are parsed)."""
    if retry.attempts < 0:
        r.err(f"{path}.attempts", "attempts cannot be negative")
    if retry.attempts == 0 and (
        retry.per_try_timeout_ms is not None or retry.retry_on or retry.retry_remote_localities is not None
    ):
        r.err(path, "http retry policy configured when attempts are set to 0 (disabled)")
    if retry.retry_on:
        for policy in retry.retry_on.split(","):
            if policy not in _RETRY_ON and not _is_status_code(policy):
                r.err(f"{path}.retryOn", f"{go_quote(policy)} is not a valid retryOn policy")


def _is_status_code(text: str) -> bool:
    """net/http StatusText(strconv.Atoi(text)) != "": a code Go names."""
    try:
        HTTPStatus(int(text))
    except ValueError:
        return False
    return True


def validate_rewrite(r: Reporter, path: str, rewrite: Rewrite) -> None:
    """validateHTTPRewrite."""
    regex = rewrite.uri_regex_rewrite
    if rewrite.uri and regex is not None:
        r.err(path, "rewrite may only contain one of URI or UriRegexRewrite")
        return
    if not rewrite.uri and regex is None and not rewrite.authority:
        r.err(
            path,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or "
            "UriRegexRewrite may be specified",
        )
        return
    if regex is not None:
        at = f"{path}.uriRegexRewrite"
        if not regex.match or not regex.rewrite:
            r.err(at, "UriRegexRewrite has errors\nUriRegexRewrite requires both Rewrite and Match fields to be set")
            return
        err = validate_string_regexp(regex.match, "HTTPRewrite.UriRegexRewrite.Match")
        if err:
            r.err(f"{at}.match", f"UriRegexRewrite has errors\n{err}")


def validate_redirect(r: Reporter, path: str, redirect: Redirect) -> None:
    """validateHTTPRedirect (istiod stops at the first problem)."""
    if not (redirect.uri or redirect.authority or redirect.port is not None or redirect.derive_port or redirect.scheme):
        r.err(path, "redirect must specify URI, authority, scheme, or port")
    elif redirect.redirect_code and not 300 <= redirect.redirect_code <= 399:
        r.err(f"{path}.redirectCode", f"{redirect.redirect_code} is not a valid redirect code, must be 3xx")
    elif redirect.scheme and redirect.scheme not in ("http", "https"):
        r.err(f"{path}.scheme", 'invalid redirect scheme, must be "http" or "https"')
    elif redirect.port:
        r.err(f"{path}.port", validate_port(redirect.port))
