"""VirtualService ``http:`` admission rules (validate_http.py, istiod's validateHTTPRoute): one minimal bad input
per rule with istiod's message and field, valid inputs (seed 001's routes) without problems, and the typed model
the parser builds."""

from __future__ import annotations

import textwrap

import pytest

from tcpmesh.model.config import load_config_text
from tcpmesh.model.problems import Problem, Severity
from tcpmesh.model.resources_http import StringMatch


def problems_of(text: str) -> list[Problem]:
    _, problems = load_config_text(textwrap.dedent(text), "test.yaml")
    return problems


def vs(http: str, extra: str = "hosts: [reviews]") -> str:
    body = textwrap.indent(f"{extra}\nhttp:\n{textwrap.dedent(http).strip(chr(10))}", "  ")
    return f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\nspec:\n{body}\n"


def rule(fields: str, route: str = "[{destination: {host: reviews}}]") -> str:
    """One http rule in flow style; ``fields`` adds rule fields (", fault: {...}")."""
    return vs(f"- {{route: {route}{fields}}}")


ERRORS = [
    # validateHTTPRouteConflict
    (vs("- {match: [{uri: {prefix: /}}]}"), "spec.http[0]", "HTTP route, redirect or direct_response is required"),
    (rule(", redirect: {uri: /x}"), "spec.http[0]", "HTTP route cannot contain both route and redirect"),
    (
        vs("- {redirect: {uri: /x}, fault: {abort: {httpStatus: 500}}}"),
        "spec.http[0]",
        "HTTP route cannot contain both fault and redirect",
    ),
    (
        vs("- {redirect: {uri: /x}, rewrite: {uri: /y}}"),
        "spec.http[0]",
        "HTTP route rule cannot contain both rewrite and redirect",
    ),
    (
        vs("- {directResponse: {status: 200}, route: [{destination: {host: a}}]}"),
        "spec.http[0]",
        "HTTP route cannot contain both route and direct_response",
    ),
    (
        rule(", delegate: {name: d}", route="[{destination: {host: a}}]").replace("- {route", "- {name: r, route"),
        "spec.http[0].route",
        "root HTTP route r must not specify route",
    ),
    (
        vs("- {delegate: {name: d}, route: [{destination: {host: a}}]}", extra="gateways: []"),
        "spec.http[0].delegate",
        "delegate HTTP route cannot contain delegate",
    ),
    (
        rule(", mirror: {host: m}, mirrors: [{destination: {host: n}}]"),
        "spec.http[0]",
        "HTTP route cannot contain both mirror and mirrors",
    ),
    # validateHTTPRouteMatchRequest
    (
        rule(", match: [{headers: {end-user: null}}]"),
        "spec.http[0].match[0].headers.end-user",
        "header match end-user cannot be null",
    ),
    (
        rule(", match: [{headers: {'bad header': {exact: a}}}]"),
        "spec.http[0].match[0].headers.bad header",
        "header name bad header is not a valid header name",
    ),
    (
        rule(", match: [{headers: {x: {prefix: ''}}}]"),
        "spec.http[0].match[0].headers.x",
        '"headers": prefix string match should not be empty',
    ),
    (
        rule(", match: [{uri: {regex: ''}}]"),
        "spec.http[0].match[0].uri",
        '"uri": regex string match should not be empty',
    ),
    (
        rule(", match: [{uri: {regex: '(a'}}]"),
        "spec.http[0].match[0].uri",
        "Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)",
    ),
    (
        rule(", match: [{uri: {regex: '(?=a)'}}]"),
        "spec.http[0].match[0].uri",
        '"uri": invalid or unsupported Perl syntax',
    ),
    (
        rule(", match: [{uri: {regex: '" + "a" * 1025 + "'}}]"),
        "spec.http[0].match[0].uri",
        '"uri": regex is too large, max length allowed is 1024',
    ),
    (
        rule(", match: [{method: {prefix: ''}}]"),
        "spec.http[0].match[0].method",
        '"method": prefix string match should not be empty',
    ),
    (
        rule(", match: [{queryParams: {q: {regex: '['}}}]"),
        "spec.http[0].match[0].queryParams.q",
        '"queryParams": error parsing regexp',
    ),
    (rule(", match: [{port: 70000}]"), "spec.http[0].match[0].port", "port number 70000 must be in the range"),
    (
        rule(", match: [{sourceNamespace: Bad_NS}]"),
        "spec.http[0].match[0].sourceNamespace",
        "sourceNamespace match Bad_NS is invalid",
    ),
    (
        rule(", match: [{gateways: ['a/B_c']}]"),
        "spec.http[0].match[0].gateways[0]",
        'invalid value for gateway name: "B_c"',
    ),
    (
        rule(", match: [{headers: {'@request.auth.claims.sub': {exact: a}}}]"),
        "spec.http[0].match[0].headers.@request.auth.claims.sub",
        "JWT claim based routing (key: @request.auth.claims.sub) is only supported for gateway",
    ),
    (
        rule(", match: [{uri: {exact: /a, prefix: /b}}]"),
        "spec.http[0].match[0].uri.prefix",
        "only one of exact, prefix or regex may be set (already have exact)",
    ),
    # headers
    (
        rule(", headers: {request: {set: {':path': /x}}}"),
        "spec.http[0].headers.request.set.:path",
        'invalid header ":path": header cannot have ":" prefix',
    ),
    (
        rule(", headers: {response: {set: {host: x}}}"),
        "spec.http[0].headers.response.set.host",
        'invalid header "host": cannot set Host header',
    ),
    (
        rule(", headers: {request: {remove: ['']}}"),
        "spec.http[0].headers.request.remove[0]",
        "header name cannot be empty",
    ),
    (
        rule(", headers: {request: {add: {x: '100%'}}}"),
        "spec.http[0].headers.request.add.x",
        "header value configuration: invalid header configuration. Un-escaped %",
    ),
    (
        rule(", headers: {request: {add: {x: '%START_TIME'}}}"),
        "spec.http[0].headers.request.add.x",
        "Un-terminated variable expression '%START_TIME'",
    ),
    (
        rule(", rewrite: {authority: a}, headers: {request: {set: {host: b}}}"),
        "spec.http[0].headers.request.set.host",
        'authority header cannot be set multiple times: have "a", attempting to set "b"',
    ),
    (
        rule("", route="[{destination: {host: a}, headers: {response: {remove: [':status']}}}]"),
        "spec.http[0].route[0].headers.response.remove[0]",
        'invalid header ":status": header cannot have ":" prefix',
    ),
    # CORS
    (
        rule(", corsPolicy: {allowOrigins: [{exact: ''}]}"),
        "spec.http[0].corsPolicy.allowOrigins[0]",
        "'' is not a valid match type for CORS allow origins",
    ),
    (
        rule(", corsPolicy: {allowMethods: [FETCH]}"),
        "spec.http[0].corsPolicy.allowMethods[0]",
        '"FETCH" is not a supported HTTP method',
    ),
    (
        rule(", corsPolicy: {allowHeaders: ['a b']}"),
        "spec.http[0].corsPolicy.allowHeaders[0]",
        "header name a b is not a valid header name",
    ),
    (
        rule(", corsPolicy: {maxAge: 1500ms}"),
        "spec.http[0].corsPolicy.maxAge",
        "max_age duration is accurate only to seconds precision",
    ),
    # fault
    (rule(", fault: {}"), "spec.http[0].fault", "HTTP fault injection must have an abort and/or a delay"),
    (
        rule(", fault: {abort: {httpStatus: 700}}"),
        "spec.http[0].fault.abort.httpStatus",
        "HTTP status 700 is not in range 200-599",
    ),
    (
        rule(", fault: {abort: {httpStatus: 500, percentage: {value: 101}}}"),
        "spec.http[0].fault.abort.percentage",
        "percentage 101 is neither 0.0, nor in range [0.0001, 100.0]",
    ),
    (
        rule(", fault: {abort: {grpcStatus: NOPE}}"),
        "spec.http[0].fault.abort.grpcStatus",
        'gRPC status "NOPE" is not supported.',
    ),
    (
        rule(", fault: {abort: {http2Error: x}}"),
        "spec.http[0].fault.abort.http2Error",
        "HTTP/2 abort fault injection not supported yet",
    ),
    (
        rule(", fault: {delay: {exponentialDelay: 1s}}"),
        "spec.http[0].fault.delay.exponentialDelay",
        "exponentialDelay not supported yet",
    ),
    (
        rule(", fault: {delay: {fixedDelay: 0.5ms}}"),
        "spec.http[0].fault.delay.fixedDelay",
        "duration must be greater than 1ms",
    ),
    (
        rule(", fault: {delay: {fixedDelay: 7s, percent: 120}}"),
        "spec.http[0].fault.delay.percent",
        "percentage 120 is not in range 0..100",
    ),
    # mirror
    (
        rule(", mirror: {host: m}, mirrorPercentage: {value: 150}"),
        "spec.http[0].mirrorPercentage",
        "mirror_percentage must have a max value of 100 (it has 150.000000)",
    ),
    (rule(", mirror: {host: '*'}"), "spec.http[0].mirror.host", "invalid destination host *"),
    (
        rule(", mirrors: [{percentage: {value: 1}}]"),
        "spec.http[0].mirrors[0]",
        "destination is required for mirrors",
    ),
    (
        rule(", mirror: {host: m}, mirrorPercent: 101"),
        "spec.http[0].mirrorPercent",
        "mirror_percent must have a max value of 100 (it has 101)",
    ),
    # redirect / rewrite / direct response
    (vs("- {redirect: {redirectCode: 301}}"), "spec.http[0].redirect", "redirect must specify URI, authority"),
    (
        vs("- {redirect: {uri: /a, redirectCode: 200}}"),
        "spec.http[0].redirect.redirectCode",
        "200 is not a valid redirect code, must be 3xx",
    ),
    (
        vs("- {redirect: {uri: /a, scheme: ftp}}"),
        "spec.http[0].redirect.scheme",
        'invalid redirect scheme, must be "http" or "https"',
    ),
    (
        rule(", rewrite: {}"),
        "spec.http[0].rewrite",
        "rewrite must specify at least one of URI, UriRegexRewrite, or authority",
    ),
    (
        rule(", rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}"),
        "spec.http[0].rewrite",
        "rewrite may only contain one of URI or UriRegexRewrite",
    ),
    (
        rule(", rewrite: {uriRegexRewrite: {match: '(', rewrite: b}}"),
        "spec.http[0].rewrite.uriRegexRewrite.match",
        '"HTTPRewrite.UriRegexRewrite.Match": error parsing regexp',
    ),
    (
        vs("- {directResponse: {status: 100}}"),
        "spec.http[0].directResponse.status",
        "HTTP status 100 is not in range 200-599",
    ),
    # retries / timeout
    (rule(", retries: {attempts: -1}"), "spec.http[0].retries.attempts", "attempts cannot be negative"),
    (
        rule(", retries: {retryOn: 5xx}"),
        "spec.http[0].retries",
        "http retry policy configured when attempts are set to 0 (disabled)",
    ),
    (
        rule(", retries: {attempts: 2, retryOn: '5xx,nope'}"),
        "spec.http[0].retries.retryOn",
        '"nope" is not a valid retryOn policy',
    ),
    (rule(", timeout: 1.5ms"), "spec.http[0].timeout", "only durations to ms precision are supported"),
    (rule(", timeout: soon"), "spec.http[0].timeout", "invalid duration 'soon'"),
    # destinations
    (
        rule("", route="[{destination: {host: a}, weight: -1}]"),
        "spec.http[0].route[0].weight",
        "weight -1 < 0",
    ),
    (
        rule("", route="[{destination: {host: a}}, {destination: {host: b}}]"),
        "spec.http[0].route",
        "total destination weight = 0",
    ),
    (
        rule("", route="[{destination: {host: a, subset: Bad_Subset}}]"),
        "spec.http[0].route[0].destination.subset",
        "subset name is invalid: Bad_Subset",
    ),
    (rule("", route="[{weight: 100}]"), "spec.http[0].route[0]", "destination is required"),
    (rule(", timeouts: 1s"), "spec.http[0].timeouts", "unknown field; did you mean 'timeout'?"),
    (vs("- null"), "spec.http", "http route may not be null"),
    # round 2: the rest of validateHTTPRouteConflict, delegates, mirrors, matches and header values
    (
        vs("- {name: r, delegate: {name: d}, redirect: {uri: /x}}"),
        "spec.http[0].redirect",
        "root HTTP route r must not specify redirect",
    ),
    (
        vs("- {redirect: {uri: /x}, directResponse: {status: 200}}"),
        "spec.http[0]",
        "HTTP route rule cannot contain both direct_response and redirect",
    ),
    (
        vs("- {directResponse: {status: 503}, fault: {abort: {httpStatus: 500}}}"),
        "spec.http[0]",
        "HTTP route cannot contain both fault and direct_response",
    ),
    (
        vs("- {directResponse: {status: 200}, rewrite: {uri: /y}}"),
        "spec.http[0]",
        "HTTP route rule cannot contain both rewrite and direct_response",
    ),
    (
        vs("- {directResponse: {status: 200, body: {string: '" + "x" * (1024 * 1024 + 1) + "'}}}"),
        "spec.http[0].directResponse.body",
        "large direct_responses may impact control plane performance, must be less than 1MB",
    ),
    (
        rule(", mirror: {host: m}, mirrorPercentage: {value: -1}"),
        "spec.http[0].mirrorPercentage",
        "mirror_percentage must have a min value of 0 (it has -1.000000)",
    ),
    (rule(", mirrors: [null]"), "spec.http[0].mirrors[0]", "mirror cannot be null"),
    (
        rule(", mirrors: [{destination: {host: m}, percentage: {value: 150}}]"),
        "spec.http[0].mirrors[0].percentage",
        "mirror percentage must have a max value of 100 (it has 150.000000)",
    ),
    (
        rule(", mirrors: [{destination: {host: m}, percentage: {value: -5}}]"),
        "spec.http[0].mirrors[0].percentage",
        "mirror percentage must have a min value of 0 (it has -5.000000)",
    ),
    (
        rule(", mirrors: [{destination: {host: m, subset: Bad_Subset}}]"),
        "spec.http[0].mirrors[0].destination.subset",
        "subset name is invalid: Bad_Subset",
    ),
    (
        rule(", match: [{withoutHeaders: {'bad header': {exact: a}}}]"),
        "spec.http[0].match[0].withoutHeaders.bad header",
        "header name bad header is not a valid header name",
    ),
    (
        rule(", match: [{withoutHeaders: {x: {regex: '(a'}}}]"),
        "spec.http[0].match[0].withoutHeaders.x",
        '"withoutHeaders": error parsing regexp',
    ),
    (
        rule(", match: [{scheme: {prefix: ''}}]"),
        "spec.http[0].match[0].scheme",
        '"scheme": prefix string match should not be empty',
    ),
    (
        rule(", match: [{authority: {regex: '[z-a]'}}]"),
        "spec.http[0].match[0].authority",
        '"authority": error parsing regexp',
    ),
    (
        rule(", match: [{sourceLabels: {'bad key!': v}}]"),
        "spec.http[0].match[0].sourceLabels.bad key!",
        'invalid tag key: "bad key!"',
    ),
    (
        rule(', headers: {request: {set: {x: "a\\x01b"}}}'),
        "spec.http[0].headers.request.set.x",
        "is invalid",
    ),
    (
        rule(", headers: {response: {add: {':authority': x}}}"),
        "spec.http[0].headers.response.add.:authority",
        'invalid header ":authority": header cannot have ":" prefix',
    ),
    (
        rule("", route="[{destination: {host: a}, headers: {request: {add: {x: '%BAD'}}}}]"),
        "spec.http[0].route[0].headers.request.add.x",
        "Un-terminated variable expression '%BAD'",
    ),
    (
        rule(", corsPolicy: {allowOrigins: [{regex: '(a'}]}"),
        "spec.http[0].corsPolicy.allowOrigins[0]",
        '"corsPolicy.allowOrigins": error parsing regexp',
    ),
    (
        rule(", corsPolicy: {exposeHeaders: ['']}"),
        "spec.http[0].corsPolicy.exposeHeaders[0]",
        "header name cannot be empty",
    ),
    (
        rule(", rewrite: {uriRegexRewrite: {match: '^/a'}}"),
        "spec.http[0].rewrite.uriRegexRewrite",
        "UriRegexRewrite requires both Rewrite and Match fields to be set",
    ),
    (
        vs("- {redirect: {uri: /a, port: 70000}}"),
        "spec.http[0].redirect.port",
        "port number 70000 must be in the range 1..65535",
    ),
    (
        rule(", retries: {attempts: 0, perTryTimeout: 1s}"),
        "spec.http[0].retries",
        "http retry policy configured when attempts are set to 0 (disabled)",
    ),
    (rule(", retries: {attempts: 2, perTryTimeout: 0.5ms}"), "spec.http[0].retries.perTryTimeout", "duration"),
    (
        rule(", fault: {delay: {fixedDelay: 1s, percentage: {value: 0.00001}}}"),
        "spec.http[0].fault.delay.percentage",
        "percentage 1e-05 is neither 0.0, nor in range [0.0001, 100.0]",
    ),
    (
        vs("- {delegate: {name: d}}", extra="hosts: []\ntcp: [{route: [{destination: {host: a}}]}]"),
        "spec.tcp",
        "delegate virtual service must have no tcp route specified",
    ),
]


@pytest.mark.parametrize(("text", "field", "expected"), ERRORS)
def test_rule_reports_error(text: str, field: str, expected: str) -> None:
    errors = [p for p in problems_of(text) if p.is_error]
    assert any(expected in p.message and p.field == field for p in errors), [f"{p.field}: {p.message}" for p in errors]


WARNINGS = [
    (
        vs("- {route: [{destination: {host: a}}]}\n- {route: [{destination: {host: b}}]}"),
        "spec.http[1]",
        "virtualService rule #1 not used (only the last rule can have no matches)",
    ),
    (
        vs(
            "- {match: [{uri: {prefix: /a}}], route: [{destination: {host: a}}]}\n"
            "- {name: two, match: [{name: m, uri: {prefix: /a}}], route: [{destination: {host: b}}]}"
        ),
        "spec.http[1].match[0]",
        'virtualService rule "two" match "m" is not used (duplicate/overlapping match in rule #0)',
    ),
    (
        rule(", fault: {abort: {percentage: {value: 10}}}"),
        "spec.http[0].fault.abort",
        "abort configured, but error type not set",
    ),
    (
        rule(", mirror: {host: m}, mirrorPercent: 5"),
        "spec.http[0].mirrorPercent",
        'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead',
    ),
    (
        vs(
            "- {route: [{destination: {host: a}}]}\n- {match: [{uri: {prefix: /b}}], route: [{destination: {host: b}}]}"
        ),
        "spec.http[1]",
        "virtualService rule #1 not used (route without matches defined before)",
    ),
    (
        vs("- {directResponse: {status: 200, body: {string: '" + "x" * (100 * 1024 + 1) + "'}}}"),
        "spec.http[0].directResponse.body",
        "large direct_responses may impact control plane performance",
    ),
    (
        vs(
            "- {name: a, match: [{uri: {exact: /x}}], route: [{destination: {host: a}}]}\n"
            "- {name: b, match: [{uri: {exact: /x}}], route: [{destination: {host: b}}]}"
        ),
        "spec.http[1]",
        'virtualService rule "b" not used (all matches used by prior rules)',
    ),
]


@pytest.mark.parametrize(("text", "field", "expected"), WARNINGS)
def test_rule_reports_warning(text: str, field: str, expected: str) -> None:
    problems = problems_of(text)
    assert not [p for p in problems if p.is_error], problems
    assert any(p.severity is Severity.WARNING and p.field == field and expected in p.message for p in problems), [
        f"{p.field}: {p.message}" for p in problems
    ]


SEED_001 = """\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    fault:
      delay:
        percentage:
          value: 100.0
        fixedDelay: 7s
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 80
    - destination:
        host: reviews
        subset: v3
      weight: 20
    timeout: 10s
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,connect-failure,503"}
    corsPolicy: {allowOrigins: [{exact: "https://example.com"}], allowMethods: [GET], maxAge: 24h}
    headers: {request: {set: {x-a: "%HOSTNAME%"}, remove: [x-b]}, response: {add: {x-c: "100%%"}}}
    mirror: {host: reviews, subset: v3}
    mirrorPercentage: {value: 10.5}
"""


def test_seed_routes_are_valid_and_typed() -> None:
    config, problems = load_config_text(SEED_001, "seed.yaml")
    assert problems == []
    (service,) = config.virtual_services
    first, second = service.http
    (match,) = first.match
    assert match.headers == (("end-user", StringMatch(kind="exact", value="jason")),)
    assert first.fault is not None
    assert first.fault.delay is not None
    assert (first.fault.delay.fixed_delay_ms, first.fault.delay.percentage) == (7000, 100.0)
    assert [(d.destination.subset, d.weight) for d in second.route] == [("v1", 80), ("v3", 20)]
    assert second.timeout_ms == 10_000
    assert second.retries is not None
    assert second.retries.per_try_timeout_ms == 2000
    assert second.mirror_percentage == 10.5


def test_problem_located_at_line() -> None:
    (problem,) = problems_of(SEED_001.replace("fixedDelay: 7s", "fixedDelay: 7"))
    assert problem.line == SEED_001.splitlines().index("        fixedDelay: 7s") + 1
    assert str(problem).startswith("test.yaml:")
    assert "spec.http[0].fault.delay.fixedDelay" in str(problem)
