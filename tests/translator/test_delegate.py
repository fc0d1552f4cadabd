"""The delegate merge against istiod's own cases (pilot/pkg/model/virtualservice_test.go TestHasConflict), through
``merges``: a delegate rule survives exactly when its match does not conflict with the root's."""

from __future__ import annotations

import pytest

from tcpmesh.model.resources_http import HTTPMatch, HTTPRoute, StringMatch
from tcpmesh.translator.delegate import merges


def _m(kind: str, value: str) -> StringMatch:
    return StringMatch(kind=kind, value=value)


def _uri(kind: str, value: str) -> HTTPMatch:
    return HTTPMatch(uri=_m(kind, value))


def _header(kind: str, value: str, name: str = "header") -> HTTPMatch:
    return HTTPMatch(headers=((name, _m(kind, value)),))


# (name, root match, leaf match, conflict) — TestHasConflict's table, in its order.
CASES = [
    ("regex uri", _uri("regex", "^/productpage"), _uri("prefix", "/productpage/v2"), True),
    ("regex root, leaf without uri", _uri("regex", "^/productpage"), HTTPMatch(), False),
    ("regex leaf, root without uri", HTTPMatch(), _uri("regex", "^/productpage"), False),
    (
        "regex root, prefix leaf",
        _uri("regex", "^/productpage"),
        _uri("prefix", "/productpage"),
        True,
    ),
    (
        "prefix root, regex leaf",
        _uri("prefix", "/productpage"),
        _uri("regex", "^/productpage"),
        True,
    ),
    ("match uri", _uri("prefix", "/productpage"), _uri("prefix", "/productpage/v2"), False),
    ("mismatch uri", _uri("prefix", "/productpage/v2"), _uri("prefix", "/productpage"), True),
    (
        "exact in prefix",
        _uri("prefix", "/productpage/v2"),
        _uri("exact", "/productpage/v2"),
        False,
    ),
    (
        "headers not equal",
        _header("exact", "h1"),
        _header("exact", "h2"),
        True,
    ),
    (
        "headers equal",
        _header("exact", "h1"),
        _header("exact", "h1"),
        False,
    ),
    (
        "headers match",
        _header("prefix", "h1"),
        _header("exact", "h1-v1"),
        False,
    ),
    (
        "headers mismatch",
        _header("prefix", "h1"),
        _header("exact", "h2"),
        True,
    ),
    (
        "headers prefix mismatch",
        _header("prefix", "h1"),
        _header("prefix", "h2"),
        True,
    ),
    (
        "diff headers",
        _header("exact", "h1"),
        _header("exact", "h2", "header-2"),
        False,
    ),
    (
        "withoutHeaders mismatch",
        HTTPMatch(without_headers=(("header", _m("prefix", "h1")),)),
        HTTPMatch(without_headers=(("header", _m("exact", "h2")),)),
        True,
    ),
    ("port 0 root", HTTPMatch(port=0), HTTPMatch(port=8080), False),
    ("port 0 leaf", HTTPMatch(port=8080), HTTPMatch(port=0), False),
    ("port differs", HTTPMatch(port=8080), HTTPMatch(port=8090), True),
    ("sourceLabels mismatch", HTTPMatch(source_labels=(("a", "b"),)), HTTPMatch(source_labels=(("a", "c"),)), True),
    ("sourceNamespace mismatch", HTTPMatch(source_namespace="test1"), HTTPMatch(source_namespace="test2"), True),
    (
        "root has less gateways than delegate",
        HTTPMatch(gateways=("ingress-gateway",)),
        HTTPMatch(gateways=("ingress-gateway", "mesh")),
        True,
    ),
]


@pytest.mark.parametrize(("root", "leaf", "conflict"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_conflict_as_istiod_decides(root: HTTPMatch, leaf: HTTPMatch, conflict: bool) -> None:
    assert merges(HTTPRoute(match=(root,)), "default", HTTPRoute(match=(leaf,)), "default") is not conflict
