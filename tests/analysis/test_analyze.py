"""`tcpmesh analyze`: one minimal bad input per analyzer code with its message, a clean baseline and the
samples without errors, the one-line format and location, and the command's exit status."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import pytest

from tcpmesh.analysis import Finding, Level, analyze
from tcpmesh.analysis.codes import ALL_CODES
from tcpmesh.commands import analyze as analyze_command
from tcpmesh.model.config import load_config, load_config_text
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy
from tests.analysis.test_analyze_gatewayapi import BAD as GATEWAY_API_BAD

DELEGATES = (Path(__file__).parents[1] / "testdata" / "inputs" / "http-delegate.yaml").read_text()

ROOT = Path(__file__).resolve().parents[2]


def _doc(kind: str, name: str, spec: str, api: str = "networking.istio.io/v1") -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{body}\n"


def join(*docs: str) -> str:
    return "---\n".join(docs)


def gateway(name: str = "gw", port: int = 31400, selector: str = "istio: ingressgateway") -> str:
    server = f"{{port: {{number: {port}, name: tcp, protocol: TCP}}, hosts: ['*']}}"
    return _doc("Gateway", name, f"selector: {{{selector}}}\nservers: [{server}]")


def tls_gateway(credential: str, mode: str = "SIMPLE") -> str:
    tls = f"{{mode: {mode}, credentialName: {credential}}}"
    server = f"{{port: {{number: 9443, name: tls, protocol: TLS}}, hosts: ['*'], tls: {tls}}}"
    return _doc("Gateway", "tls-gw", f"selector: {{istio: ingressgateway}}\nservers: [{server}]")


def service(ports: str = "[{name: tcp, port: 9000}]", selector: str = "app: echo", name: str = "echo") -> str:
    return _doc("Service", name, f"ports: {ports}\nselector: {{{selector}}}", api="v1")


def deployment(version: str = "v1", ports: str = "[{containerPort: 9000}]") -> str:
    return _doc(
        "Deployment",
        f"echo-{version}",
        f"""
        selector: {{matchLabels: {{app: echo, version: {version}}}}}
        template:
          metadata: {{labels: {{app: echo, version: {version}}}}}
          spec: {{containers: [{{name: echo, image: echo, ports: {ports}}}]}}
        """,
        api="apps/v1",
    )


def destination_rule(host: str = "echo", subsets: str = "[{name: v1, labels: {version: v1}}]") -> str:
    return _doc("DestinationRule", "d", f"host: {host}\nsubsets: {subsets}")


def virtual_service(
    destination: str = "{host: echo, subset: v1, port: {number: 9000}}",
    match: str = "[{port: 31400}]",
    gateways: str = "[gw]",
    name: str = "x",
    hosts: str = "['*']",
) -> str:
    return _doc(
        "VirtualService",
        name,
        f"hosts: {hosts}\ngateways: {gateways}\ntcp: [{{match: {match}, route: [{{destination: {destination}}}]}}]",
    )


BASE = (gateway(), service(), deployment(), destination_rule())
"""A clean mesh: gateway 31400 → VS x → echo:9000 subset v1 (one pod)."""


def base(*replace: str, vs: str | None = None) -> str:
    """The clean mesh with ``vs`` as its VirtualService plus extra documents."""
    return join(*BASE, vs if vs is not None else virtual_service(), *replace)


DEFAULT_PROXY = Proxy()


def findings_of(text: str, proxies: tuple[Proxy, ...] = (DEFAULT_PROXY,)) -> list[Finding]:
    config, _ = load_config_text(textwrap.dedent(text), "test.yaml")
    return analyze(config, TranslateOptions(), proxies)


def test_clean_baseline_has_no_findings() -> None:
    assert findings_of(base()) == []


CASES = [
    pytest.param(
        base(vs=virtual_service(gateways="[nope]")),
        "TM0102",
        "gateway default/nope not found",
        id="vs-gateway-unknown",
    ),
    pytest.param(
        base(vs=virtual_service(match="[{port: 31400, gateways: [istio-system/nope]}]")),
        "TM0102",
        "gateway istio-system/nope not found",
        id="vs-match-gateway-unknown",
    ),
    pytest.param(
        base(gateway("gw2", port=31401), vs=virtual_service(match="[{port: 31400, gateways: [gw2]}]")),
        "TM0106",
        "gateway default/gw2 is not in spec.gateways",
        id="vs-match-gateway-not-bound",
    ),
    pytest.param(
        join(
            _doc(
                "Gateway",
                "gw",
                "selector: {istio: ingressgateway}\n"
                "servers: [{port: {number: 31400, name: tcp, protocol: TCP}, hosts: [a.example.com]}]",
            ),
            service(),
            deployment(),
            destination_rule(),
            virtual_service(hosts="[b.example.com]"),
        ),
        "TM0107",
        "matches a server host of gateway default/gw",
        id="vs-hosts-not-on-gateway",
    ),
    pytest.param(
        base(vs=virtual_service(destination="{host: nope, port: {number: 9000}}")),
        "TM0101",
        "host 'nope' (nope.default.svc.cluster.local) is not a Service or ServiceEntry",
        id="destination-host-unknown",
    ),
    pytest.param(
        base(vs=virtual_service(destination="{host: echo, subset: v9, port: {number: 9000}}")),
        "TM0103",
        "subset 'v9' not found in DestinationRule default/d",
        id="destination-subset-undefined",
    ),
    pytest.param(
        join(gateway(), service(), deployment(), virtual_service()),
        "TM0103",
        "no DestinationRule for host echo.default.svc.cluster.local",
        id="destination-subset-no-rule",
    ),
    pytest.param(
        base(vs=virtual_service(destination="{host: echo, subset: v1, port: {number: 9999}}")),
        "TM0104",
        "port 9999 is not exposed by Service default/echo (ports: 9000)",
        id="destination-port-not-exposed",
    ),
    pytest.param(
        join(
            gateway(),
            service(ports="[{name: tcp, port: 9000}, {name: tcp-b, port: 9001}]"),
            deployment(),
            destination_rule(),
            virtual_service(destination="{host: echo, subset: v1}"),
        ),
        "TM0104",
        "istiod uses the gateway port 31400, which is not exposed",
        id="destination-port-omitted-falls-back-to-missing-port",
    ),
    pytest.param(
        join(
            gateway(),
            service(ports="[{name: tcp, port: 31400, targetPort: 9000}, {name: tcp-b, port: 9001}]"),
            deployment(),
            destination_rule(),
            virtual_service(destination="{host: echo, subset: v1}"),
        ),
        "TM0105",
        "destination port omitted while Service default/echo (ports: 31400, 9001) has several ports",
        id="destination-port-omitted-ambiguous",
    ),
    pytest.param(
        base(destination_rule(subsets="[{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]")),
        "TM0201",
        "subset 'v2' (version=v2) selects none of the 1 workload(s) of Service default/echo",
        id="subset-selects-no-workloads",
    ),
    pytest.param(
        base(_doc("DestinationRule", "other", "host: nope.example.com")),
        "TM0202",
        "host 'nope.example.com' matches no Service or ServiceEntry",
        id="destination-rule-host-unknown",
    ),
    pytest.param(
        join(gateway(selector="istio: egressgateway"), *BASE[1:], virtual_service()),
        "TM0301",
        "selector istio=egressgateway matches no gateway proxy",
        id="gateway-selects-no-proxy",
    ),
    pytest.param(
        base(gateway("gw2")),
        "TM0302",
        "port 31400 (TCP) on 0.0.0.0 is already held by Gateway default/gw spec.servers[0]",
        id="gateway-server-conflict",
    ),
    pytest.param(
        base(gateway("gw2", port=31401)),
        "TM0303",
        "no VirtualService tcp rule applies to port 31401 (TCP)",
        id="gateway-server-unused",
    ),
    pytest.param(
        base(virtual_service(name="y", match="[{port: 31400}]")),
        "TM0401",
        "ignored on gateway default/gw port 31400: VirtualService default/x spec.tcp[0] comes first",
        id="second-virtualservice-ignored",
    ),
    pytest.param(
        base(vs=virtual_service(match="[{port: 31401}]")),
        "TM0402",
        "matches no TCP/TLS-terminating server of gateways default/gw (ports: 31400)",
        id="rule-matches-no-server",
    ),
    pytest.param(
        join(
            _doc(
                "Gateway",
                "gw",
                "selector: {istio: ingressgateway}\nservers: [{port: {number: 443, name: tls, protocol: TLS}, "
                "hosts: ['*.example.com'], tls: {mode: PASSTHROUGH}}]",
            ),
            *BASE[1:],
            *(
                _doc(
                    "VirtualService",
                    name,
                    "hosts: [a.example.com]\ngateways: [gw]\n"
                    "tls: [{match: [{sniHosts: [a.example.com]}], "
                    "route: [{destination: {host: echo, subset: v1, port: {number: 9000}}}]}]",
                )
                for name in ("a", "b")
            ),
        ),
        "TM0403",
        "SNI hosts ['a.example.com'] are already routed by VirtualService default/a spec.tls[0].match[0]",
        id="tls-sni-shadowed-across-virtualservices",
    ),
    pytest.param(
        base(service(name="lonely", selector="app: nothing")),
        "TM0501",
        "selector app=nothing matches no Deployment pod or WorkloadEntry in namespace default",
        id="service-selects-no-workloads",
    ),
    pytest.param(
        base(
            _doc(
                "ServiceEntry",
                "ext",
                "hosts: [ext.example.com]\naddresses: [10.9.0.1]\nlocation: MESH_INTERNAL\nresolution: STATIC\n"
                "ports: [{number: 7000, name: tcp, protocol: TCP}]\nworkloadSelector: {labels: {app: vm}}",
            ),
            _doc("WorkloadEntry", "vm1", "address: 10.0.0.5\nlabels: {app: vm}\nports: {tpc: 7001}"),
        ),
        "TM0502",
        "port name 'tpc' is not a port of ServiceEntry default/ext (ports: tcp)",
        id="workloadentry-port-name-unknown",
    ),
    pytest.param(
        join(
            gateway(),
            service(ports="[{name: tcp, port: 9000, targetPort: echo-port}]"),
            deployment(ports="[{name: other, containerPort: 9000}]"),
            destination_rule(),
            virtual_service(),
        ),
        "TM0503",
        "targetPort 'echo-port' is not a named port of Pod echo-v1-0",
        id="service-target-port-not-found",
    ),
    pytest.param(
        base(tls_gateway("missing-cred")),
        "TM0101",
        "kubernetes://missing-cred (proxy namespace istio-system): secret istio-system/missing-cred not found",
        id="gateway-credential-not-found",
    ),
    pytest.param(
        base(
            tls_gateway("odd-cred"),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: odd-cred, namespace: istio-system}\n"
            "stringData: {password: hunter2}\n",
        ),
        "TM0304",
        "found secret, but didn't have expected keys (cert and key) or (tls.crt and tls.key); found: password",
        id="gateway-credential-without-keys",
    ),
    # Gateway API: the cases of test_analyze_gatewayapi.py.
    *(
        pytest.param(DELEGATES, code, message, id=f"delegate-{n}")
        for n, (code, message) in enumerate(
            (
                ("TM0101", "delegate virtual service default/missing of default/bookinfo not found"),
                ("TM0101", "delegate virtual service reviews-team/private of default/bookinfo is not exported"),
                ("TM0108", "no match of this rule falls within a match of default/bookinfo spec.http[0]"),
            )
        )
    ),
    *(
        pytest.param(GATEWAY_API_BAD, code, message, id=f"gateway-api-{code}")
        for code, message in (
            ("TM0601", 'NoMatchingParent: sectionName "nope" not found'),
            ("TM0602", "BackendNotFound: backend(x.default.svc.cluster.local) not found"),
            ("TM0603", "listener b: Accepted ProtocolConflict"),
            ("TM0604", "no Gateway default/absent of a class tcpmesh handles"),
        )
    ),
]


@pytest.mark.parametrize(("text", "code", "message"), CASES)
def test_finding(text: str, code: str, message: str) -> None:
    found = [f for f in findings_of(text) if f.code == code]
    assert found, f"no {code} in {[str(f) for f in findings_of(text)]}"
    assert any(message in f.message for f in found), [f.message for f in found]


def test_every_code_has_a_case() -> None:
    tested = {p.values[1] for p in CASES}
    # The schema codes come from load_config, tested through the command.
    assert {c.id for c in ALL_CODES} - tested == {"TM0001", "TM0002"}


def test_codes_are_unique() -> None:
    assert len({c.id for c in ALL_CODES}) == len(ALL_CODES)
    assert len({c.name for c in ALL_CODES}) == len(ALL_CODES)


def test_finding_is_located_and_rendered_on_one_line() -> None:
    text = base(vs=virtual_service(destination="{host: nope, port: {number: 9000}}"))
    (finding,) = [f for f in findings_of(text) if f.code == "TM0101"]
    assert finding.severity is Level.ERROR
    assert (finding.kind, finding.namespace, finding.resource) == ("VirtualService", "default", "x")
    assert finding.field == "spec.tcp[0].route[0].destination.host"
    line = textwrap.dedent(text).splitlines()[finding.line - 1]
    assert "host: nope" in line
    assert str(finding).startswith(
        f"test.yaml:{finding.line}: Error [TM0101] VirtualService default/x: spec.tcp[0].route[0].destination.host: "
    )
    assert "\n" not in str(finding)


def test_extra_proxy_labels_select_the_gateway() -> None:
    text = join(gateway(selector="istio: egressgateway"), *BASE[1:], virtual_service())
    egress = Proxy(labels=(("istio", "egressgateway"),))
    assert not [f for f in findings_of(text, (DEFAULT_PROXY, egress)) if f.code == "TM0301"]


def test_first_matching_virtualservice_wins_even_if_a_later_one_matches_more_precisely() -> None:
    """Creation order decides, not specificity: the catch-all VS x wins and VS y is named as ignored."""
    text = base(virtual_service(name="y", match="[{port: 31400}]"), vs=virtual_service(match="[{gateways: [gw]}]"))
    (ignored,) = [f for f in findings_of(text) if f.code == "TM0401"]
    assert (ignored.resource, ignored.field) == ("y", "spec.tcp[0]")


def test_omitted_port_on_mesh_route_is_not_ambiguous() -> None:
    """On sidecars the listener port is the service port, so a multi-port service needs no explicit port."""
    text = join(
        service(ports="[{name: tcp, port: 9000}, {name: tcp-b, port: 9001}]"),
        deployment(),
        destination_rule(),
        virtual_service(
            destination="{host: echo, subset: v1}", match="[{port: 9000}]", gateways="[mesh]", hosts="[echo]"
        ),
    )
    assert findings_of(text) == []


SAMPLES = [
    pytest.param(["samples/tcp-echo"], id="tcp-echo"),
    pytest.param(["samples/two-gateways"], id="two-gateways"),
    pytest.param(["samples/tcp-echo", "samples/tcp-echo-shift/tcp-echo-20-v2.yaml"], id="tcp-echo-shift"),
]


@pytest.mark.parametrize("paths", SAMPLES)
def test_samples_have_no_errors(paths: list[str]) -> None:
    config, problems = load_config([ROOT / p for p in paths])
    assert not [p for p in problems if p.is_error]
    assert [str(f) for f in analyze(config, TranslateOptions(), [DEFAULT_PROXY]) if f.is_error] == []


# --- the command ----------------------------------------------------------------------------------


def run_command(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    analyze_command.add_arguments(parser)
    return analyze_command.run(parser.parse_args(list(argv)))


def test_command_exits_0_on_samples(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(str(ROOT / "samples/two-gateways")) == 0
    assert capsys.readouterr().out == ""


def test_command_exits_1_on_an_error_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(base(vs=virtual_service(destination="{host: nope, port: {number: 9000}}")))
    assert run_command(str(path)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(f"{path}:" in line and "Error [TM0101]" in line for line in lines)


def test_command_exits_0_on_warnings_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(base(gateway("gw2", port=31401)))
    assert run_command(str(path)) == 0
    assert "Info [TM0303]" in capsys.readouterr().out


def test_command_reports_validation_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "invalid.yaml"
    path.write_text(base(vs=virtual_service(destination="{host: echo, subset: v1, port: {number: 70000}}")))
    assert run_command(str(path)) == 1
    assert "Error [TM0001]" in capsys.readouterr().out


def test_command_proxy_labels_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "egress.yaml"
    path.write_text(join(gateway(selector="istio: egressgateway"), *BASE[1:], virtual_service()))
    assert run_command(str(path), "-o", "json") == 0
    assert [f["code"] for f in json.loads(capsys.readouterr().out)] == ["TM0301"]
    assert run_command(str(path), "-o", "json", "--proxy-labels", "istio=egressgateway") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_http_route_destinations_are_analysed() -> None:
    """HTTP rules' destinations get the same host and subset checks as tcp/tls ones (TM0101, TM0103)."""
    sample = Path(__file__).resolve().parents[2] / "samples" / "bookinfo-reviews"
    text = (sample / "reviews-services.yaml").read_text() + "\n---\n" + (sample / "reviews-gateway.yaml").read_text()
    assert findings_of(text) == []
    route = "    - destination:\n        host: {}\n        subset: {}\n"
    bad = text.replace(route.format("reviews", "v1"), route.format("nowhere", "v9"))
    assert [(f.code, f.field) for f in findings_of(bad)] == [
        ("TM0101", "spec.http[0].route[0].destination.host"),
        ("TM0103", "spec.http[0].route[0].destination.subset"),
    ]
