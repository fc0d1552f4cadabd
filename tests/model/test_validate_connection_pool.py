"""DestinationRule connectionPool.http and outlier detection: istiod's validateConnectionPool /
validateOutlierDetection messages and ranges (one minimal bad input each), located; the valid forms pass."""

from __future__ import annotations

import pytest

from tcpmesh.model.problems import Severity

from .test_validate import errors_of, policy, problems_of

HTTP = "{connectionPool: {http: %s}}"
OUTLIER = "{outlierDetection: %s}"

ERRORS = [
    pytest.param(
        HTTP % "{http1MaxPendingRequests: -1}", "http1 max pending requests must be non-negative", id="pending"
    ),
    pytest.param(HTTP % "{http2MaxRequests: -5}", "http2 max requests must be non-negative", id="h2-requests"),
    pytest.param(
        HTTP % "{maxRequestsPerConnection: -1}", "max requests per connection must be non-negative", id="per-connection"
    ),
    pytest.param(HTTP % "{maxRetries: -1}", "max retries must be non-negative", id="retries"),
    pytest.param(HTTP % "{maxConcurrentStreams: -1}", "max concurrent streams must be non-negative", id="streams"),
    pytest.param(
        HTTP % "{h2UpgradePolicy: UPGRADE, useClientProtocol: true}",
        "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
        id="upgrade-and-client-protocol",
    ),
    pytest.param(
        HTTP % "{http1MaxPendingRequests: 2147483648}",
        "invalid value for int32 field http1MaxPendingRequests: 2147483648",
        id="pending-int32",
    ),
    pytest.param(HTTP % "{maxRequestsPerConnection: '1'}", "expected integer, got string", id="per-connection-string"),
    pytest.param(
        HTTP % "{h2UpgradePolicy: ALWAYS}",
        "unsupported value 'ALWAYS'; expected one of DEFAULT, DO_NOT_UPGRADE, UPGRADE",
        id="upgrade-enum",
    ),
    pytest.param(HTTP % "{useClientProtocol: yes please}", "expected boolean, got string", id="client-protocol-bool"),
    pytest.param(HTTP % "{idleTimeout: 0s}", "duration must be greater than 1ms", id="idle-zero"),
    pytest.param(HTTP % "{idleTimeout: 1500us}", "only durations to ms precision are supported", id="idle-precision"),
    pytest.param(HTTP % "{idleTimeout: soon}", "invalid duration 'soon'", id="idle-malformed"),
    pytest.param(HTTP % "{http2KeepAlive: {timeout: 5s}}", "http2 keepalive interval is required", id="ping-interval"),
    pytest.param(HTTP % "{http2KeepAlive: {interval: 30s}}", "http2 keepalive timeout is required", id="ping-timeout"),
    pytest.param(
        HTTP % "{http2KeepAlive: {interval: 0s, timeout: 5s}}", "duration must be greater than 1ms", id="ping-zero"
    ),
    pytest.param(
        HTTP % "{http2KeepAlive: {interval: 1s, timeout: 1s, every: 2}}", "unknown field", id="ping-unknown-field"
    ),
    pytest.param(
        HTTP % "{maxRequestsPerConection: 1}",
        "unknown field; did you mean 'maxRequestsPerConnection'?",
        id="unknown-field",
    ),
    pytest.param(OUTLIER % "{consecutive5xxErrors: -1}", "invalid value for uint32 field", id="5xx-uint32"),
    pytest.param(OUTLIER % "{consecutiveGatewayErrors: 4294967296}", "invalid value for uint32", id="gateway-uint32"),
    pytest.param(OUTLIER % "{interval: 0s}", "duration must be greater than 1ms", id="interval-zero"),
    pytest.param(OUTLIER % "{baseEjectionTime: -1s}", "invalid duration '-1s'", id="ejection-negative"),
    pytest.param(OUTLIER % "{maxEjectionPercent: 101}", "percentage 101 is not in range 0..100", id="ejection-percent"),
    pytest.param(
        OUTLIER % "{outlierDetectionHttpErrorCodes: [500, 600]}",
        "Invalid value: 600: spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[1] in body should be "
        "less than or equal to 599",
        id="error-code-high",
    ),
    pytest.param(
        OUTLIER % "{outlierDetectionHttpErrorCodes: [99]}",
        "in body should be greater than or equal to 100",
        id="code-low",
    ),
    pytest.param(OUTLIER % "{outlierDetectionHttpErrorCodes: ['500']}", "expected integer, got str", id="code-string"),
    pytest.param(OUTLIER % "{outlierDetectionHttpErrorCodes: 500}", "expected array of integers", id="codes-scalar"),
    pytest.param("{retryBudget: {percent: 101}}", "in body should be less than or equal to 100", id="budget-percent"),
    pytest.param("{retryBudget: {percent: -1}}", "in body should be greater than or equal to 0", id="budget-negative"),
    pytest.param(
        "{retryBudget: {minRetryConcurrency: -1}}",
        "invalid value for uint32 field minRetryConcurrency",
        id="budget-min",
    ),
    pytest.param("{retryBudget: {budget: 1}}", "unknown field", id="budget-unknown"),
]


@pytest.mark.parametrize(("tp", "expected"), ERRORS)
def test_bad_http_pool_or_outlier_setting_is_an_error(tp: str, expected: str) -> None:
    text = policy(tp)
    found = errors_of(text)
    assert any(expected in p.message for p in found), "\n".join(map(str, problems_of(text)))


VALID = [
    pytest.param(
        HTTP % "{http1MaxPendingRequests: 1, http2MaxRequests: 0, maxRequestsPerConnection: 1, maxRetries: 3, "
        "idleTimeout: 1ms, h2UpgradePolicy: DEFAULT, maxConcurrentStreams: 2147483647}",
        id="counts",
    ),
    pytest.param(HTTP % "{h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 30s, timeout: 5s}}", id="upgrade"),
    pytest.param(HTTP % "{h2UpgradePolicy: DO_NOT_UPGRADE, useClientProtocol: true}", id="client-protocol"),
    pytest.param(
        OUTLIER % "{consecutive5xxErrors: 0, consecutiveGatewayErrors: 4294967295, interval: 1s, "
        "baseEjectionTime: 3m, maxEjectionPercent: 100, minHealthPercent: 0}",
        id="outlier",
    ),
    pytest.param(OUTLIER % "{outlierDetectionHttpErrorCodes: [100, 500, 599]}", id="error-codes"),
    pytest.param("{retryBudget: {}}", id="retry-budget-alone"),
    pytest.param("{retryBudget: {percent: 0, minRetryConcurrency: 4294967295}}", id="retry-budget-bounds"),
]


@pytest.mark.parametrize("tp", VALID)
def test_valid_http_pool_and_outlier_settings_pass(tp: str) -> None:
    assert errors_of(policy(tp)) == []


def test_budget_interval_is_a_warning_not_an_error() -> None:
    text = policy("{retryBudget: {percent: 30, budgetInterval: 10s}}")
    assert errors_of(text) == []
    (warning,) = problems_of(text)
    assert warning.severity is Severity.WARNING
    assert "budgetInterval" in str(warning)


def test_problems_are_located_at_the_field() -> None:
    text = policy(
        "\n  connectionPool:\n    http:\n      maxRetries: -1\n      http2KeepAlive: {timeout: 5s}\n"
        "  outlierDetection:\n    consecutiveErrors: 1"
    )
    rendered = [str(p) for p in problems_of(text)]
    assert rendered == [
        "test.yaml:13: DestinationRule default/d: spec.trafficPolicy.outlierDetection.consecutiveErrors: warning: "
        "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors "
        "instead",
        "test.yaml:10: DestinationRule default/d: spec.trafficPolicy.connectionPool.http.maxRetries: "
        "max retries must be non-negative",
        "test.yaml:11: DestinationRule default/d: spec.trafficPolicy.connectionPool.http.http2KeepAlive: "
        "http2 keepalive interval is required",
    ], "\n".join(rendered)
    assert [p.severity for p in problems_of(text)] == [Severity.WARNING, Severity.ERROR, Severity.ERROR]
