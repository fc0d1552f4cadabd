"""`tcpmesh analyze` on ``http:`` rules, from files on disk: their destinations and mirrors get the host, subset
and port checks tcp/tls destinations get (istiod's destinationhost and destinationrule analyzers look at
``mirror`` / ``mirrors`` too), their match gateways the gateway checks, and a rule no HTTP server of its
gateways can apply is reported as unreachable."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tcpmesh.analysis import analyze
from tcpmesh.model.config import load_config
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy

from .test_analyze import ROOT, run_command

SAMPLE = ROOT / "samples" / "bookinfo-reviews"

MESH = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {ports: [{name: http, port: 9080}, {name: http-admin, port: 9081}], selector: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


def _findings(tmp_path: Path, vs: str, mesh: str = MESH) -> list[tuple[str, str]]:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(mesh) + "---\n" + textwrap.dedent(vs))
    config, problems = load_config([path])
    assert not [p for p in problems if p.is_error], problems
    # TM0501 (a Service without workloads) is beside the point here.
    return [(f.code, f.field) for f in analyze(config, TranslateOptions(), [Proxy()]) if f.code != "TM0501"]


def _vs(http: str, gateways: str = "[gw]") -> str:
    body = textwrap.indent(textwrap.dedent(http).strip("\n"), "  ")
    head = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\n"
    return f"{head}spec:\n  hosts: ['*']\n  gateways: {gateways}\n  http:\n{body}\n"


GOOD = "{host: reviews, subset: v1, port: {number: 9080}}"
GOOD_V2 = "{host: reviews, subset: v2, port: {number: 9080}}"


def test_a_clean_http_rule_with_mirrors_has_no_findings(tmp_path: Path) -> None:
    vs = _vs(f"""
    - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
      route: [{{destination: {GOOD}}}]
      mirrors: [{{destination: {GOOD}}}]
    - route: [{{destination: {GOOD}, weight: 80}}, {{destination: {GOOD_V2}, weight: 20}}]
      mirror: {GOOD}
    """)
    assert _findings(tmp_path, vs) == []


def test_mirrors_get_the_host_subset_and_port_checks(tmp_path: Path) -> None:
    vs = _vs(f"""
    - route: [{{destination: {GOOD}}}]
      mirror: {{host: nowhere, port: {{number: 9080}}}}
    - route: [{{destination: {GOOD}}}]
      mirrors:
      - destination: {{host: reviews, subset: v9, port: {{number: 9080}}}}
      - destination: {{host: reviews, subset: v1, port: {{number: 7}}}}
    """)
    assert sorted(_findings(tmp_path, vs)) == [
        ("TM0101", "spec.http[0].mirror.host"),
        ("TM0103", "spec.http[1].mirrors[0].destination.subset"),
        ("TM0104", "spec.http[1].mirrors[1].destination.port"),
    ]


def test_an_omitted_port_on_a_multi_port_service_is_the_gateway_port(tmp_path: Path) -> None:
    """istiod falls back to the server port (8080 here), which reviews does not expose; a mirror likewise."""
    vs = _vs("""
    - route: [{destination: {host: reviews, subset: v1}}]
      mirror: {host: reviews, subset: v2}
    """)
    assert sorted(_findings(tmp_path, vs)) == [
        ("TM0104", "spec.http[0].mirror"),
        ("TM0104", "spec.http[0].route[0].destination"),
    ]
    on_9080 = MESH.replace("number: 8080", "number: 9080")
    assert sorted(_findings(tmp_path, vs, on_9080)) == [
        ("TM0105", "spec.http[0].mirror"),
        ("TM0105", "spec.http[0].route[0].destination"),
    ]


def test_http_match_gateways_are_checked(tmp_path: Path) -> None:
    vs = _vs(f"""
    - match: [{{gateways: [nope]}}, {{gateways: [mesh]}}]
      route: [{{destination: {GOOD}}}]
    - route: [{{destination: {GOOD}}}]
    """)
    assert sorted(_findings(tmp_path, vs)) == [
        ("TM0102", "spec.http[0].match[0].gateways[0]"),
        ("TM0106", "spec.http[0].match[1].gateways[0]"),
        ("TM0402", "spec.http[0].match"),  # neither match applies on gw
    ]


def test_an_http_rule_no_http_server_applies_is_unreachable(tmp_path: Path) -> None:
    vs = _vs(f"""
    - match: [{{port: 9999}}]
      route: [{{destination: {GOOD}}}]
    - route: [{{destination: {GOOD}}}]
    """)
    assert _findings(tmp_path, vs) == [("TM0402", "spec.http[0].match")]
    tcp_only = MESH.replace("name: http, protocol: HTTP", "name: tcp, protocol: TCP")
    found = _findings(tmp_path, _vs(f"- route: [{{destination: {GOOD}}}]"), tcp_only)
    assert ("TM0402", "spec.http[0]") in found


def test_the_http_samples_have_no_error_findings(tmp_path: Path) -> None:
    for files in (
        ["reviews-services.yaml", "reviews-gateway.yaml"],
        ["reviews-services.yaml", "mesh"],
    ):
        config, problems = load_config([SAMPLE / f for f in files])
        assert not [p for p in problems if p.is_error]
        assert [str(f) for f in analyze(config, TranslateOptions(), [Proxy()]) if f.is_error] == []
    assert run_command(str(SAMPLE / "reviews-services.yaml"), str(SAMPLE / "reviews-gateway.yaml")) == 0
