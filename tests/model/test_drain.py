"""The drain annotation `tcpmesh drain` writes: parsed, validated with located errors, written back verbatim."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tcpmesh.model.config import load_config_text
from tcpmesh.model.drain import Drain, drain_annotation, drains_of, format_since, parse_drain
from tcpmesh.model.problems import Severity

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
  annotations:
    {key}: '{value}'
spec:
  hosts: ['*']
  gateways: [gw]
  tcp:
  - route:
    - destination: {{host: tcp-echo, subset: v1}}
      weight: 20
    - destination: {{host: tcp-echo, subset: v2}}
      weight: 80
"""


def load(key: str, value: str) -> tuple[object, list[tuple[str, int, str, str]]]:
    config, problems = load_config_text(VS.format(key=key, value=value), "vs.yaml")
    return config, [(p.file, p.line, p.severity.value, p.message) for p in problems]


def test_what_the_command_writes_parses_back() -> None:
    since = format_since(datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC))
    assert since == "2026-12-02T01:02:03.456Z"
    key, value = drain_annotation("v1", since, 0.25)
    assert parse_drain(key, value) == Drain("v1", since, 0.25)
    config, problems = load(key, value)
    assert problems == []
    assert drains_of(config.virtual_services[0]) == (Drain("v1", since, 0.25),)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "expected JSON like"),
        ('{"since": "2026-12-02T01:00:00Z"}', "expected exactly the keys 'since' and 'fraction'"),
        ('{"since": "2026-12-02 01:00:00", "fraction": 0.5}', "is not an RFC 3339 UTC time"),
        ('{"since": "2026-13-02T01:00:00Z", "fraction": 0.5}', "is not a valid time"),
        ('{"since": "2026-12-02T01:00:00Z", "fraction": 1.5}', "fraction 1.5 must be a number from 0 to 1"),
        ('{"since": "2026-12-02T01:00:00Z", "fraction": true}', "fraction True must be a number from 0 to 1"),
    ],
)
def test_a_bad_annotation_is_a_located_error(value: str, message: str) -> None:
    config, problems = load("drain.tcpmesh.io/v1", value)
    assert len(problems) == 1, problems
    file, line, severity, text = problems[0]
    assert (file, line, severity) == ("vs.yaml", 6, "error")
    assert "drain annotation 'drain.tcpmesh.io/v1'" in text
    assert message in text
    assert drains_of(config.virtual_services[0]) == ()  # type: ignore[attr-defined]


def test_a_subset_the_routes_do_not_name_is_a_warning() -> None:
    _, problems = load(*drain_annotation("v3", "2026-12-02T01:00:00Z", 0.5))
    assert [(p[2], p[3]) for p in problems] == [
        (
            Severity.WARNING.value,
            "drain annotation 'drain.tcpmesh.io/v3': no tcp or tls route of this virtual service has subset 'v3'",
        )
    ]


def test_a_subset_name_is_checked() -> None:
    _, problems = load("drain.tcpmesh.io/V_1", '{"since": "2026-12-02T01:00:00Z", "fraction": 0.5}')
    assert [p[3] for p in problems] == [
        "drain annotation 'drain.tcpmesh.io/V_1': the subset 'V_1' is not a valid subset name"
    ]


def test_other_annotations_are_not_drains() -> None:
    config, problems = load("example.com/note", "anything")
    assert problems == []
    assert drains_of(config.virtual_services[0]) == ()  # type: ignore[attr-defined]
