"""Admission rules (istiod webhook / Kubernetes API server) applied by ``validate_resource``: one minimal bad
input per rule with istiod's message, valid inputs (including the seed documents) with no errors, and the
location (file, line, field path) of a few representative problems."""

from __future__ import annotations

import textwrap

import pytest

from tcpmesh.model.config import load_config_text
from tcpmesh.model.problems import Problem, Severity


def problems_of(text: str) -> list[Problem]:
    _, problems = load_config_text(textwrap.dedent(text), "test.yaml")
    return problems


def errors_of(text: str) -> list[Problem]:
    return [p for p in problems_of(text) if p.severity is Severity.ERROR]


def _doc(kind: str, spec: str, name: str, api: str, meta: str) -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n{meta}spec:\n{body}\n"


def gw(spec: str, name: str = "gw") -> str:
    return _doc("Gateway", spec, name, "networking.istio.io/v1", "")


def server(extra: str = "", port: str = "{number: 31400, name: tcp, protocol: TCP}", hosts: str = "['*']") -> str:
    """A Gateway with one server; ``extra`` adds server fields in flow style (", tls: {...}")."""
    return gw(f"selector: {{istio: ingressgateway}}\nservers: [{{port: {port}, hosts: {hosts}{extra}}}]")


def vs(spec: str, name: str = "x") -> str:
    return _doc("VirtualService", spec, name, "networking.istio.io/v1", "")


def tcp_vs(route: str = "[{destination: {host: echo}}]", match: str = "", hosts: str = "['*']") -> str:
    rule = f"{{match: {match}, route: {route}}}" if match else f"{{route: {route}}}"
    return vs(f"hosts: {hosts}\ngateways: [gw]\ntcp: [{rule}]")


def tls_vs(rule: str, hosts: str = "[a.example.com]", gateways: str = "[gw]") -> str:
    return vs(f"hosts: {hosts}\ngateways: {gateways}\ntls: [{rule}]")


def dr(spec: str, name: str = "d") -> str:
    return _doc("DestinationRule", spec, name, "networking.istio.io/v1", "")


def policy(tp: str) -> str:
    return dr(f"host: echo\ntrafficPolicy: {tp}")


def se(spec: str, annotations: str = "") -> str:
    meta = f"  annotations: {annotations}\n" if annotations else ""
    return _doc("ServiceEntry", spec, "s", "networking.istio.io/v1", meta)


def we(spec: str) -> str:
    return _doc("WorkloadEntry", spec, "w", "networking.istio.io/v1", "")


def svc(spec: str) -> str:
    return _doc("Service", spec, "svc", "v1", "")


def deploy(spec: str) -> str:
    return _doc("Deployment", spec, "dep", "apps/v1", "")


POD = "template: {metadata: {labels: {app: a}}, spec: {containers: [{name: c, image: i, ports: %s}]}}"

# --- errors ---------------------------------------------------------------------------------------

ERRORS = [
    pytest.param(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n"
        "    metadata: {labels: {app: a}}\n    spec: {containers: [{name: c, image: i}]}\n",
        "spec.selector: Required value",
        id="deploy-selector-required",
    ),
    pytest.param(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {}}\n"
        "  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: c, image: i}]}\n",
        "empty selector is invalid for deployment",
        id="deploy-selector-empty",
    ),
    # Gateway: ValidateGateway / validateServer / validateServerPort / validateServerBind
    pytest.param(
        gw("servers: [{port: {number: 1, name: a, protocol: TCP}, hosts: ['*']}]", name="Bad.Name"),
        'invalid gateway name: "Bad.Name"',
        id="gw-name",
    ),
    pytest.param(gw("servers: []"), "gateway must have at least one server", id="gw-no-servers"),
    pytest.param(server(hosts="[]"), "server config must contain at least one host", id="gw-no-hosts"),
    pytest.param(server(hosts="[foo]"), "short names (non FQDN) are not allowed", id="gw-short-host"),
    pytest.param(server(hosts="[ns/foo]"), "short names (non FQDN) are not allowed", id="gw-short-host-ns"),
    pytest.param(server(hosts="[Bad_ns/a.example.com]"), 'invalid namespace value "Bad_ns" in gateway', id="gw-ns"),
    pytest.param(
        server(hosts="[/a.example.com]"), "config namespace and dnsName in host entry cannot be empty", id="gw-empty-ns"
    ),
    pytest.param(server(hosts="['*foo.com']"), 'partial wildcard "*foo.com" not allowed', id="gw-partial-wildcard"),
    pytest.param(
        server(hosts="[foo_bar.com]"), 'domain name "foo_bar.com" invalid (label "foo_bar" invalid)', id="gw-domain"
    ),
    pytest.param(
        server(port="{number: 1, name: a, protocol: FOO}"),
        'invalid protocol "FOO", supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP',
        id="gw-protocol",
    ),
    pytest.param(
        server(port="{number: 0, name: a, protocol: TCP}"),
        "port number 0 must be in the range 1..65535",
        id="gw-port-0",
    ),
    pytest.param(
        server(port="{number: 70000, name: a, protocol: TCP}"),
        "port number 70000 must be in the range 1..65535",
        id="gw-port-high",
    ),
    pytest.param(
        server(port="{number: 80, name: a, protocol: TCP, targetPort: 8080}"),
        "targetPort has no impact on Gateways",
        id="gw-target-port",
    ),
    pytest.param(
        server(port="{number: 80, protocol: TCP}"), 'port name must be set: number:80 protocol:"TCP"', id="gw-port-name"
    ),
    pytest.param(
        gw(
            "servers:\n- {port: {number: 1, name: tcp, protocol: TCP}, hosts: ['*']}\n"
            "- {port: {number: 2, name: tcp, protocol: TCP}, hosts: ['*']}"
        ),
        "port names in servers must be unique: duplicate name tcp",
        id="gw-dup-port-name",
    ),
    pytest.param(
        server(", bind: 'unix://sock'", port="{number: 0, name: a, protocol: TCP}"),
        "sock is not an absolute path to a file",
        id="gw-bind-unix-relative",
    ),
    pytest.param(
        server(", bind: 'unix://'", port="{number: 0, name: a, protocol: TCP}"),
        "unix address must not be empty",
        id="gw-bind-unix-empty",
    ),
    pytest.param(
        server(", bind: 'unix:///sock'"), "port number must be 0 for unix domain socket", id="gw-bind-unix-port"
    ),
    pytest.param(server(", bind: 1.2.3"), "1.2.3 is not a valid IP", id="gw-bind-ip"),
    pytest.param(
        server(port="{number: 443, name: tls, protocol: TLS}"),
        "server must have TLS settings for HTTPS/TLS protocols",
        id="gw-tls-protocol-no-tls",
    ),
    pytest.param(
        server(", tls: {mode: PASSTHROUGH}"), "server cannot have TLS settings for non HTTPS/TLS ports", id="gw-tcp-tls"
    ),
    pytest.param(
        server(", tls: {mode: SIMPLE, credentialName: c}", port="{number: 80, name: http, protocol: HTTP}"),
        "server cannot have TLS settings for plain text HTTP ports",
        id="gw-http-tls",
    ),
    # validateTLSOptions
    *(
        pytest.param(
            server(f", tls: {{mode: ISTIO_MUTUAL, {field}}}", port="{number: 443, name: tls, protocol: TLS}"),
            f"ISTIO_MUTUAL TLS cannot have associated {what}",
            id=f"gw-istio-mutual-{what.replace(' ', '-')}",
        )
        for field, what in [
            ("serverCertificate: /c", "server certificate"),
            ("privateKey: /k", "private key"),
            ("caCertificates: /ca", "CA bundle"),
            ("credentialName: c", "credentialName"),
            ("credentialNames: [c]", "credentialNames"),
            ("tlsCertificates: [{serverCertificate: /c, privateKey: /k}]", "tlsCertificates"),
        ]
    ),
    pytest.param(
        server(", tls: {mode: SIMPLE}", port="{number: 443, name: tls, protocol: TLS}"),
        "SIMPLE TLS requires a server certificate",
        id="gw-simple-cert",
    ),
    pytest.param(
        server(", tls: {mode: SIMPLE, serverCertificate: /c}", port="{number: 443, name: tls, protocol: TLS}"),
        "SIMPLE TLS requires a private key",
        id="gw-simple-key",
    ),
    pytest.param(
        server(
            ", tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /c}]}",
            port="{number: 443, name: tls, protocol: TLS}",
        ),
        "SIMPLE TLS requires a private key",
        id="gw-simple-tls-certificates-key",
    ),
    pytest.param(
        server(
            ", tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}",
            port="{number: 443, name: tls, protocol: TLS}",
        ),
        "MUTUAL TLS requires a client CA bundle",
        id="gw-mutual-ca",
    ),
    pytest.param(
        server(", tls: {mode: OPTIONAL_MUTUAL, caCertificates: /ca}", port="{number: 443, name: tls, protocol: TLS}"),
        "MUTUAL TLS requires a server certificate",
        id="gw-optional-mutual-cert",
    ),
    pytest.param(
        server(
            ", tls: {mode: SIMPLE, credentialName: c, serverCertificate: /c, privateKey: /k}",
            port="{number: 443, name: tls, protocol: TLS}",
        ),
        "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be "
        "specified",
        id="gw-one-credential-source",
    ),
    pytest.param(
        server(
            ", tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, caCrl: /crl}",
            port="{number: 443, name: tls, protocol: TLS}",
        ),
        "CRL is not supported with SIMPLE TLS",
        id="gw-crl-simple",
    ),
    pytest.param(
        server(
            ", tls: {mode: PASSTHROUGH, credentialName: c, caCrl: /crl}", port="{number: 443, name: t, protocol: TLS}"
        ),
        "CRL is not supported with credentialName. CRL has to be specified in the credential",
        id="gw-crl-credential",
    ),
    # VirtualService: ValidateVirtualService
    pytest.param(
        vs("tcp: [{route: [{destination: {host: echo}}]}]"),
        "delegate virtual service must have no tcp route specified",
        id="vs-delegate-tcp",
    ),
    pytest.param(
        vs("gateways: [gw]\ntls: [{match: [{sniHosts: [a.b]}], route: [{destination: {host: echo}}]}]"),
        "delegate virtual service must have no tls route specified",
        id="vs-delegate-tls",
    ),
    pytest.param(
        vs("gateways: [gw]\ntcp: [{route: [{destination: {host: echo}}]}]"),
        "delegate virtual service must have no gateways specified",
        id="vs-delegate-gateways",
    ),
    pytest.param(
        vs("hosts: ['*']\ntcp: [{route: [{destination: {host: echo}}]}]"),
        "wildcard host * is not allowed for virtual services bound to the mesh gateway",
        id="vs-mesh-wildcard",
    ),
    pytest.param(
        vs("hosts: ['*']\ngateways: [gw, mesh]\ntcp: [{route: [{destination: {host: echo}}]}]"),
        "wildcard host * is not allowed for virtual services bound to the mesh gateway",
        id="vs-mesh-and-gateway-wildcard",
    ),
    pytest.param(
        tcp_vs(hosts="[foo_bar.com]"), 'domain name "foo_bar.com" invalid (label "foo_bar" invalid)', id="vs-host"
    ),
    pytest.param(
        tcp_vs(hosts="[a.example.com, a.example.com]"),
        "duplicate hosts in virtual service: a.example.com & a.example.com",
        id="vs-dup-hosts",
    ),
    pytest.param(
        tcp_vs(hosts="['*.example.com', a.example.com]"),
        "duplicate hosts in virtual service: *.example.com & a.example.com",
        id="vs-dup-hosts-wildcard",
    ),
    pytest.param(
        vs("hosts: [a.example.com]"), "http, tcp or tls must be provided in virtual service", id="vs-no-routes"
    ),
    # validateTCPMatch / validateTCPRoute
    pytest.param(
        tcp_vs(match="[{destinationSubnets: [10.0.0.0/33]}]"), "10.0.0.0/33 is not a valid CIDR block", id="tcp-cidr"
    ),
    pytest.param(tcp_vs(match="[{destinationSubnets: [10.0.0]}]"), "10.0.0 is not a valid IP", id="tcp-subnet-ip"),
    pytest.param(
        tcp_vs(match="[{port: 70000}]"), "port number 70000 must be in the range 1..65535", id="tcp-match-port"
    ),
    pytest.param(
        tcp_vs(match="[{sourceLabels: {'bad key': v}}]"), 'invalid tag key: "bad key"', id="tcp-source-label-key"
    ),
    pytest.param(tcp_vs(match="[{sourceLabels: {app: -x}}]"), 'invalid tag value: "-x"', id="tcp-source-label-value"),
    pytest.param(
        tcp_vs(match="[{gateways: [Bad_NS/gw]}]"), 'invalid value for namespace: "Bad_NS"', id="tcp-match-gateway-ns"
    ),
    pytest.param(
        tcp_vs(match="[{gateways: [ns/Bad_gw]}]"),
        'invalid value for gateway name: "Bad_gw"',
        id="tcp-match-gateway-name",
    ),
    pytest.param(
        tcp_vs(match="[{gateways: [/gw]}]"),
        "config namespace and gateway name cannot be empty",
        id="tcp-match-gateway-empty",
    ),
    pytest.param(
        vs("hosts: ['*']\ngateways: [gw_bad]\ntcp: [{route: [{destination: {host: echo}}]}]"),
        'domain name "gw_bad" invalid (label "gw_bad" invalid)',
        id="vs-gateway-name-fqdn",
    ),
    pytest.param(
        vs("hosts: ['*']\ngateways: [./gw]\ntcp: [{route: [{destination: {host: echo}}]}]"),
        'invalid value for namespace: "."',
        id="vs-gateway-dot-namespace",
    ),
    pytest.param(tcp_vs(route="[]", match="[{port: 31400}]"), "TCP route is required", id="tcp-route-required"),
    # validateTLSRoute / validateTLSMatch / validateSniHost
    pytest.param(
        tls_vs("{route: [{destination: {host: echo}}]}"),
        "TLS route must have at least one match condition",
        id="tls-match-required",
    ),
    pytest.param(
        tls_vs("{match: [{port: 443}], route: [{destination: {host: echo}}]}"),
        "TLS match must have at least one SNI host",
        id="tls-sni-required",
    ),
    pytest.param(
        tls_vs("{match: [{sniHosts: [foo_bar.com]}], route: [{destination: {host: echo}}]}"),
        'domain name "foo_bar.com" invalid (label "foo_bar" invalid)',
        id="tls-sni-domain",
    ),
    pytest.param(
        tls_vs("{match: [{sniHosts: [b.example.com]}], route: [{destination: {host: echo}}]}"),
        'SNI host "b.example.com" is not a compatible subset of any of the virtual service hosts: [a.example.com]',
        id="tls-sni-subset",
    ),
    pytest.param(
        tls_vs(
            "{match: [{sniHosts: ['*.example.com']}], route: [{destination: {host: echo}}]}", hosts="[a.example.com]"
        ),
        'SNI host "*.example.com" is not a compatible subset',
        id="tls-sni-wildcard-not-subset",
    ),
    pytest.param(tls_vs("{match: [{sniHosts: [a.example.com]}]}"), "TLS route is required", id="tls-route-required"),
    pytest.param(
        tls_vs(
            "{match: [{sniHosts: [a.example.com], destinationSubnets: [1.2.3.4/40]}],"
            " route: [{destination: {host: e}}]}"
        ),
        "1.2.3.4/40 is not a valid CIDR block",
        id="tls-subnet",
    ),
    # validateRouteDestinations / validateDestination
    pytest.param(tcp_vs(route="[{destination: {host: '*'}}]"), "invalid destination host *", id="dest-host-star"),
    pytest.param(
        tcp_vs(route="[{destination: {host: foo_bar}}]"),
        'domain name "foo_bar" invalid (label "foo_bar" invalid)',
        id="dest-host-domain",
    ),
    pytest.param(tcp_vs(route="[{destination: {host: ''}}]"), "empty domain name not allowed", id="dest-host-empty"),
    pytest.param(
        tcp_vs(route="[{destination: {host: echo, subset: V_1}}]"), "subset name is invalid: V_1", id="dest-subset"
    ),
    pytest.param(
        tcp_vs(route="[{destination: {host: echo, port: {number: 0}}}]"),
        "port number 0 must be in the range 1..65535",
        id="dest-port-0",
    ),
    pytest.param(
        tcp_vs(route="[{destination: {host: echo, port: {}}}]"),
        "port number 0 must be in the range 1..65535",
        id="dest-port-empty",
    ),
    pytest.param(tcp_vs(route="[{destination: {host: echo}, weight: -1}]"), "weight -1 < 0", id="dest-weight-negative"),
    pytest.param(
        tcp_vs(route="[{destination: {host: a}}, {destination: {host: b}}]"),
        "total destination weight = 0",
        id="dest-total-weight-0",
    ),
    pytest.param(
        tcp_vs(route="[{destination: {host: a}, weight: 0}, {destination: {host: b}, weight: 0}]"),
        "total destination weight = 0",
        id="dest-total-weight-explicit-0",
    ),
    # validateExportTo
    pytest.param(
        vs("hosts: [a.example.com]\nexportTo: [default, .]\ntcp: [{route: [{destination: {host: e}}]}]"),
        "duplicate entries in exportTo: . and current namespace default",
        id="export-dot-and-namespace",
    ),
    pytest.param(
        vs("hosts: [a.example.com]\nexportTo: [a, a]\ntcp: [{route: [{destination: {host: e}}]}]"),
        "duplicate entries in exportTo for entry a",
        id="export-dup",
    ),
    pytest.param(
        vs("hosts: [a.example.com]\nexportTo: ['*', a]\ntcp: [{route: [{destination: {host: e}}]}]"),
        "cannot have both public (*) and non-public exportTo values for a resource",
        id="export-public-and-other",
    ),
    pytest.param(
        vs("hosts: [a.example.com]\nexportTo: ['~']\ntcp: [{route: [{destination: {host: e}}]}]"),
        "exportTo ~ (none) is not allowed for Istio configuration objects",
        id="export-none",
    ),
    pytest.param(
        vs("hosts: [a.example.com]\nexportTo: [Bad_ns]\ntcp: [{route: [{destination: {host: e}}]}]"),
        "only .,*,~, or a valid DNS 1123 label is allowed as exportTo entry",
        id="export-bad",
    ),
    # DestinationRule: ValidateDestinationRule / validateSubset
    pytest.param(dr("host: foo_bar"), 'domain name "foo_bar" invalid (label "foo_bar" invalid)', id="dr-host"),
    pytest.param(dr("subsets: [{name: v1}]"), "empty domain name not allowed", id="dr-host-missing"),
    pytest.param(
        dr("host: echo\nsubsets: [{name: v1}, {name: v1}]"), "duplicate subset names: v1", id="dr-dup-subsets"
    ),
    pytest.param(dr("host: echo\nsubsets: [{name: V_1}]"), "subset name is invalid: V_1", id="dr-subset-name"),
    pytest.param(dr("host: echo\nsubsets: [{labels: {a: b}}]"), "subset name cannot be empty", id="dr-subset-no-name"),
    pytest.param(
        dr("host: echo\nsubsets: [{name: v1, labels: {version: -v1}}]"),
        'invalid tag value: "-v1"',
        id="dr-subset-labels",
    ),
    pytest.param(
        dr("host: echo\nsubsets: [{name: v1, trafficPolicy: {}}]"),
        "traffic policy must have at least one field",
        id="dr-subset-policy-empty",
    ),
    # validateTrafficPolicy and friends
    pytest.param(policy("{}"), "traffic policy must have at least one field", id="tp-empty"),
    pytest.param(
        policy("{connectionPool: {}}"), "connection pool must have at least one field", id="tp-connection-pool-empty"
    ),
    pytest.param(
        policy("{connectionPool: {tcp: {maxConnections: -1}}}"),
        "max connections must be non-negative",
        id="tp-max-connections",
    ),
    pytest.param(
        policy("{outlierDetection: {maxEjectionPercent: 101}}"),
        "percentage 101 is not in range 0..100",
        id="tp-max-ejection",
    ),
    pytest.param(
        policy("{outlierDetection: {minHealthPercent: -1}}"),
        "percentage -1 is not in range 0..100",
        id="tp-min-health",
    ),
    pytest.param(
        policy("{outlierDetection: {consecutiveLocalOriginFailures: 3}}"),
        "outlier detection consecutive local origin failures is specified, but split external local origin errors "
        "is set to false",
        id="tp-local-origin-no-split",
    ),
    pytest.param(
        policy("{loadBalancer: {consistentHash: {maglev: {tableSize: 0}}}}"),
        "tableSize must be set for maglev",
        id="lb-maglev-unset",
    ),
    pytest.param(
        policy("{connectionPool: {http: {http1MaxPendingRequests: -1}}}"),
        "http1 max pending requests must be non-negative",
        id="pool-http1-pending",
    ),
    pytest.param(
        policy("{connectionPool: {http: {http2MaxRequests: -1}}}"),
        "http2 max requests must be non-negative",
        id="pool-http2-requests",
    ),
    pytest.param(
        policy("{connectionPool: {http: {maxRequestsPerConnection: -1}}}"),
        "max requests per connection must be non-negative",
        id="pool-requests-per-connection",
    ),
    pytest.param(
        policy("{connectionPool: {http: {maxRetries: -1}}}"), "max retries must be non-negative", id="pool-retries"
    ),
    pytest.param(
        policy("{connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}"),
        "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
        id="pool-h2-upgrade-client-protocol",
    ),
    pytest.param(
        policy("{connectionPool: {http: {maxConcurrentStreams: -1}}}"),
        "max concurrent streams must be non-negative",
        id="pool-concurrent-streams",
    ),
    pytest.param(
        policy("{loadBalancer: {consistentHash: {httpCookie: {ttl: 0s}}}}"),
        "name required for HttpCookie",
        id="lb-cookie-name",
    ),
    pytest.param(
        policy(
            "{loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 100}}], "
            "failover: [{from: a, to: b}]}}}"
        ),
        "can not simultaneously specify 'distribute' and 'failover'",
        id="locality-distribute-and-failover",
    ),
    pytest.param(
        policy("{loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 0}}]}}}"),
        "locality weight must be in range [1, 100]",
        id="locality-weight-range",
    ),
    pytest.param(
        policy("{loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 60, c/*: 30}}]}}}"),
        "total locality weight 90 != 100",
        id="locality-weight-total",
    ),
    pytest.param(
        policy("{loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 50, b/z1: 50}}]}}}"),
        "locality b/z1 overlap with previous specified ones",
        id="locality-overlap",
    ),
    pytest.param(
        policy("{loadBalancer: {localityLbSetting: {distribute: [{from: 'a/*/*', to: {b: 100}}]}}}"),
        "locality a/*/* wildcard '*' number can not exceed 1 and must be in the end",
        id="locality-wildcard",
    ),
    pytest.param(
        policy("{loadBalancer: {localityLbSetting: {distribute: [{from: a//c, to: {b: 100}}]}}}"),
        "locality a//c must not contain empty region/zone/subzone info",
        id="locality-empty-part",
    ),
    pytest.param(
        policy("{outlierDetection: {interval: 1s}, loadBalancer: {localityLbSetting: {failover: [{from: a, to: a}]}}}"),
        "locality lb failover settings must specify different regions",
        id="locality-failover-same",
    ),
    pytest.param(
        policy(
            "{outlierDetection: {interval: 1s}, loadBalancer: {localityLbSetting: {failover: [{from: a/z, to: b}]}}}"
        ),
        "locality lb failover only specify region",
        id="locality-failover-region-only",
    ),
    pytest.param(
        policy(
            "{outlierDetection: {interval: 1s}, loadBalancer: {localityLbSetting: {failover: [{from: a, to: '*'}]}}}"
        ),
        "locality lb failover region should not contain '*' wildcard",
        id="locality-failover-wildcard",
    ),
    pytest.param(
        policy(
            "{outlierDetection: {interval: 1s}, loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}], "
            "failoverPriority: [topology.kubernetes.io/zone]}}}"
        ),
        "can not simultaneously set 'failover' and topology label 'topology.kubernetes.io/zone' in 'failover_priority'",
        id="locality-failover-priority-topology",
    ),
    pytest.param(
        policy("{loadBalancer: {warmup: {minimumPercent: 10}}}"), "duration is required", id="warmup-duration"
    ),
    pytest.param(
        policy("{loadBalancer: {warmup: {duration: 10s, minimumPercent: 101}}}"),
        "minimumPercent value should be less than or equal to 100",
        id="warmup-minimum-percent",
    ),
    pytest.param(
        policy("{loadBalancer: {warmup: {duration: 10s, aggression: 0.5}}}"),
        "aggression should be greater than or equal to 1",
        id="warmup-aggression",
    ),
    pytest.param(
        policy("{loadBalancer: {consistentHash: {maglev: {tableSize: 100}}}}"),
        "tableSize must be a prime number for maglev",
        id="lb-maglev-prime",
    ),
    pytest.param(
        policy("{loadBalancer: {consistentHash: {maglev: {tableSize: 5000011}}}}"),
        "tableSize must be less than 5000011 for maglev",
        id="lb-maglev-max",
    ),
    pytest.param(
        policy("{loadBalancer: {consistentHash: {minimumRingSize: 10, ringHash: {minimumRingSize: 10}}}}"),
        "only one of MinimumRingSize or Maglev/Ringhash can be specified",
        id="lb-ring-size-both",
    ),
    pytest.param(
        policy("{portLevelSettings: [{tls: {mode: SIMPLE}}]}"),
        "portTrafficPolicy must have valid port",
        id="tp-port-level-no-port",
    ),
    pytest.param(
        policy("{portLevelSettings: [{port: {number: 80}}]}"),
        "port traffic policy must have at least one field",
        id="tp-port-level-empty",
    ),
    pytest.param(
        policy("{portLevelSettings: [{port: {number: 80}, connectionPool: {tcp: {maxConnections: -2}}}]}"),
        "max connections must be non-negative",
        id="tp-port-level-nested",
    ),
    pytest.param(
        policy("{tls: {mode: MUTUAL, privateKey: /k}}"),
        "client certificate required for mutual tls",
        id="tls-mutual-cert",
    ),
    pytest.param(
        policy("{tls: {mode: MUTUAL, clientCertificate: /c}}"),
        "private key required for mutual tls",
        id="tls-mutual-key",
    ),
    pytest.param(
        policy("{tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca}}"),
        "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
        id="tls-credential-and-files",
    ),
    pytest.param(
        policy("{tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca}}"),
        "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
        id="tls-insecure-simple",
    ),
    pytest.param(
        policy(
            "{tls: {mode: MUTUAL, insecureSkipVerify: true, subjectAltNames: [a], clientCertificate: /c,"
            " privateKey: /k}}"
        ),
        "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
        id="tls-insecure-mutual",
    ),
    pytest.param(
        policy("{tls: {mode: SIMPLE, credentialName: 'configmap://other/ca'}}"),
        'invalid configmap:// credentialName: namespace must match the configuration namespace "default"',
        id="tls-configmap-namespace",
    ),
    pytest.param(
        policy("{tunnel: {targetHost: a.example.com, targetPort: 8080}, proxyProtocol: {version: V2}}"),
        "tunnel and proxyProtocol must not be set together",
        id="tp-tunnel-and-proxy-protocol",
    ),
    pytest.param(
        policy("{tunnel: {protocol: GET, targetHost: a.example.com, targetPort: 8080}}"),
        'tunnel protocol must be "CONNECT" or "POST"',
        id="tp-tunnel-protocol",
    ),
    pytest.param(
        policy("{tunnel: {targetHost: foo_bar, targetPort: 8080}}"),
        "tunnel target host must be valid FQDN or IP address: ",
        id="tp-tunnel-host",
    ),
    pytest.param(
        policy("{tunnel: {targetHost: 10.0.0.1}}"),
        "tunnel target port is invalid: port number 0 must be in the range 1..65535",
        id="tp-tunnel-port",
    ),
    pytest.param(
        dr("host: echo\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: [other]"),
        "destination rule with workload selector cannot have exportTo beyond current namespace",
        id="dr-selector-export",
    ),
    pytest.param(
        dr("host: echo\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: [., '*']"),
        "destination rule with workload selector cannot have multiple entries in exportTo",
        id="dr-selector-export-multiple",
    ),
    pytest.param(
        dr("host: echo\nworkloadSelector: {matchLabels: {app: '*'}}"),
        'wildcard is not supported in selector: "app=*"',
        id="dr-selector-wildcard",
    ),
    # ServiceEntry: ValidateServiceEntry
    pytest.param(
        se("ports: [{number: 80, name: http, protocol: HTTP}]"),
        "service entry must have at least one host",
        id="se-hosts",
    ),
    pytest.param(se("hosts: ['*']\nports: [{number: 80, name: http, protocol: HTTP}]"), "invalid host *", id="se-star"),
    pytest.param(
        se("hosts: [foo_bar.com]\nports: [{number: 80, name: http, protocol: HTTP}]"),
        'domain name "foo_bar.com" invalid (label "foo_bar" invalid)',
        id="se-host-domain",
    ),
    pytest.param(
        se("hosts: [a.example.com]\naddresses: [1.2.3]\nports: [{number: 80, name: tcp, protocol: TCP}]"),
        "1.2.3 is not a valid IP",
        id="se-address-ip",
    ),
    pytest.param(
        se("hosts: [a.example.com]\naddresses: [10.0.0.0/40]\nports: [{number: 80, name: tcp, protocol: TCP}]"),
        "10.0.0.0/40 is not a valid CIDR block",
        id="se-address-cidr",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\naddresses: [10.0.0.0/24]\nresolution: DNS\n"
            "ports: [{number: 80, name: tcp, protocol: TCP}]"
        ),
        "CIDR addresses are allowed only for NONE/STATIC resolution types",
        id="se-cidr-dns",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: tcp}, {number: 81, name: tcp}]"),
        'service entry port name "tcp" already defined',
        id="se-dup-port-name",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: a}, {number: 80, name: b}]"),
        "service entry port 80 already defined",
        id="se-dup-port-number",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: Tcp_1}]"), "invalid port name: Tcp_1", id="se-port-name"
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: a, protocol: FOO}]"),
        "unsupported protocol: FOO",
        id="se-protocol",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 0, name: a}]"),
        "port number 0 must be in the range 1..65535",
        id="se-port-number",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: a, targetPort: 70000}]"),
        "port number 70000 must be in the range 1..65535",
        id="se-target-port",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: STATIC\n"
            "workloadSelector: {labels: {app: a}}\nendpoints: [{address: 1.2.3.4}]"
        ),
        "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        id="se-selector-and-endpoints",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: a}]\nendpoints: [{address: 1.2.3.4}]"),
        "no endpoints should be provided for resolution type none",
        id="se-none-endpoints",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: STATIC\nendpoints: [{address: b.com}]"),
        'endpoint address "b.com" is not a valid IP address',
        id="se-static-address",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: STATIC\nendpoints: [{labels: {x: y}}]"),
        "address is required",
        id="se-static-address-required",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: STATIC\n"
            "endpoints: [{address: 'unix://sock'}]"
        ),
        "sock is not an absolute path to a file",
        id="se-static-unix-relative",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: STATIC\n"
            "endpoints: [{address: 'unix:///sock', ports: {a: 80}}]"
        ),
        "unix endpoint unix:///sock must not include ports",
        id="se-static-unix-ports",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: a}, {number: 81, name: b}]\nresolution: STATIC\n"
            "endpoints: [{address: 'unix:///sock'}]"
        ),
        "exactly 1 service port required for unix endpoints",
        id="se-static-unix-one-port",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: STATIC\n"
            "endpoints: [{address: 1.2.3.4, ports: {b: 8080}}]"
        ),
        "endpoint port 8080 is not defined by the service entry",
        id="se-static-endpoint-port",
    ),
    pytest.param(
        se("hosts: ['*.example.com']\nports: [{number: 443, name: tls, protocol: TLS}]\nresolution: DNS"),
        "hosts must be FQDN if no endpoints are provided for resolution mode DNS",
        id="se-dns-fqdn",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: DNS_ROUND_ROBIN\n"
            "endpoints: [{address: b.example.com}, {address: c.example.com}]"
        ),
        "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
        id="se-dns-rr-endpoints",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: DNS\nendpoints: [{address: foo_bar}]"),
        'endpoint address "foo_bar" is not a valid FQDN or an IP address',
        id="se-dns-endpoint-address",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: DNS\n"
            "endpoints: [{address: b.example.com, ports: {c: 90}}]"
        ),
        "endpoint port 90 is not defined by the service entry",
        id="se-dns-endpoint-port",
    ),
    pytest.param(
        se("hosts: [a.example.com, b.example.com]\nports: [{number: 80, name: tcp, protocol: TCP}]\nresolution: DNS"),
        "multiple hosts provided with non-HTTP, non-TLS ports",
        id="se-multiple-hosts-tcp",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: STATIC\n"
            "workloadSelector: {labels: {app: '*'}}"
        ),
        'wildcard is not supported in selector: "app=*"',
        id="se-selector-wildcard",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: a}]\nexportTo: ['~', '*']"),
        "cannot export service entry to no one (~) and someone",
        id="se-export-none-and-public",
    ),
    # WorkloadEntry: ValidateWorkloadEntry
    pytest.param(we("labels: {app: a}"), "address is required", id="we-address"),
    pytest.param(
        we("address: foo_bar"), 'endpoint address "foo_bar" is not a valid FQDN or an IP address', id="we-fqdn"
    ),
    pytest.param(we("address: 'unix://'"), "unix address must not be empty", id="we-unix-empty"),
    pytest.param(we("address: 1.2.3.4\nports: {Bad_Name: 80}"), "invalid port name: Bad_Name", id="we-port-name"),
    pytest.param(we("address: 1.2.3.4\nports: {tcp: 0}"), "port number 0 must be in the range 1..65535", id="we-port"),
    pytest.param(we("address: 1.2.3.4\nlabels: {app: -a}"), 'invalid tag value: "-a"', id="we-labels"),
    # Kubernetes Service
    pytest.param(
        svc("ports: [{name: tcp, port: 0}]"),
        "Invalid value: 0: must be between 1 and 65535, inclusive",
        id="svc-port-0",
    ),
    pytest.param(
        svc("ports: [{name: tcp, port: 70000}]"),
        "Invalid value: 70000: must be between 1 and 65535, inclusive",
        id="svc-port-high",
    ),
    pytest.param(
        svc("ports: [{name: tcp, port: 80, targetPort: 70000}]"),
        "Invalid value: 70000: must be between 1 and 65535, inclusive",
        id="svc-target-port-int",
    ),
    pytest.param(
        svc("ports: [{name: tcp, port: 80, targetPort: abcdefghijklmnopq}]"),
        'Invalid value: "abcdefghijklmnopq": must be no more than 15 characters',
        id="svc-target-port-long",
    ),
    pytest.param(
        svc("ports: [{name: tcp, port: 80, targetPort: '123'}]"),
        'Invalid value: "123": must contain at least one letter (a-z)',
        id="svc-target-port-no-letter",
    ),
    pytest.param(
        svc("ports: [{name: tcp, port: 80, targetPort: Web_Port}]"),
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        id="svc-target-port-charset",
    ),
    pytest.param(svc("ports: [{name: a, port: 80}, {port: 81}]"), "Required value", id="svc-port-name-required"),
    pytest.param(
        svc("ports: [{name: a, port: 80}, {name: a, port: 81}]"), 'Duplicate value: "a"', id="svc-port-name-dup"
    ),
    pytest.param(
        svc("ports: [{name: Tcp, port: 80}]"),
        'Invalid value: "Tcp": a lowercase RFC 1123 label must consist of lower case alphanumeric characters',
        id="svc-port-name-format",
    ),
    pytest.param(
        svc("ports: [{name: a, port: 80, protocol: FOO}]"),
        'Unsupported value: "FOO": supported values: "SCTP", "TCP", "UDP"',
        id="svc-protocol",
    ),
    pytest.param(
        svc("ports: [{name: a, port: 80}]\nselector: {app: -a}"),
        'Invalid value: "-a": a valid label must be an empty string or consist of alphanumeric characters',
        id="svc-selector-value",
    ),
    pytest.param(
        svc("ports: [{name: a, port: 80}]\nselector: {'a/b/c': x}"),
        'Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters',
        id="svc-selector-key",
    ),
    # Kubernetes Deployment
    pytest.param(
        deploy("replicas: -1\nselector: {matchLabels: {app: a}}\n" + POD % "[]"),
        "Invalid value: -1: must be greater than or equal to 0",
        id="deploy-replicas",
    ),
    pytest.param(
        deploy("selector: {matchLabels: {app: b}}\n" + POD % "[]"),
        'Invalid value: map[string]string{"app":"a"}: `selector` does not match template `labels`',
        id="deploy-selector",
    ),
    pytest.param(
        deploy("selector: {matchLabels: {app: a}}\n" + POD % "[{containerPort: 70000}]"),
        "Invalid value: 70000: must be between 1 and 65535, inclusive",
        id="deploy-container-port",
    ),
    pytest.param(
        deploy("selector: {matchLabels: {app: a}}\n" + POD % "[{name: tcp}]"),
        "Required value",
        id="deploy-container-port-required",
    ),
    pytest.param(
        deploy("selector: {matchLabels: {app: a}}\n" + POD % "[{name: Bad_Name, containerPort: 80}]"),
        'Invalid value: "Bad_Name": must contain only alpha-numeric characters',
        id="deploy-container-port-name",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_rule_reports_error(text: str, expected: str) -> None:
    found = errors_of(text)
    assert any(expected in p.message for p in found), "\n".join(map(str, problems_of(text)))


# --- warnings -------------------------------------------------------------------------------------

WARNINGS = [
    pytest.param(
        policy("{loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}]}}}"),
        "outlier detection policy must be provided for failover",
        id="locality-failover-needs-outlier",
    ),
    pytest.param(
        server(", tls: {mode: PASSTHROUGH, serverCertificate: /c}", port="{number: 443, name: tls, protocol: TLS}"),
        "PASSTHROUGH mode does not use certificates, they will be ignored",
        id="gw-passthrough-certs",
    ),
    pytest.param(
        server(", tls: {mode: AUTO_PASSTHROUGH, credentialName: c}", port="{number: 443, name: tls, protocol: TLS}"),
        "AUTO_PASSTHROUGH mode does not use certificates, they will be ignored",
        id="gw-auto-passthrough-certs",
    ),
    pytest.param(
        server(", tls: {httpsRedirect: true}", port="{number: 443, name: tls, protocol: TLS}"),
        "tls.httpsRedirect should only be used with http servers",
        id="gw-https-redirect",
    ),
    pytest.param(
        server(
            ", tls: {mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_1}",
            port="{number: 443, name: tls, protocol: TLS}",
        ),
        "TLS version below TLSV1_2 require setting compatible ciphers",
        id="gw-old-tls-no-ciphers",
    ),
    pytest.param(
        server(
            ", tls: {mode: SIMPLE, credentialName: c, cipherSuites: [FOO, AES128-SHA]}",
            port="{number: 443, name: tls, protocol: TLS}",
        ),
        "ignoring invalid cipher suites: [FOO]",
        id="gw-invalid-cipher",
    ),
    pytest.param(
        server(
            ", tls: {mode: SIMPLE, credentialName: c, cipherSuites: [AES128-SHA, AES128-SHA]}",
            port="{number: 443, name: tls, protocol: TLS}",
        ),
        "ignoring duplicate cipher suites: [AES128-SHA]",
        id="gw-duplicate-cipher",
    ),
    pytest.param(
        server(
            ", tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /a, privateKey: /a},"
            " {serverCertificate: /b, privateKey: /b}, {serverCertificate: /c, privateKey: /c}]}",
            port="{number: 443, name: tls, protocol: TLS}",
        ),
        "SIMPLE TLS can support up to 2 server certificates",
        id="gw-three-certificates",
    ),
    pytest.param(
        vs("hosts: ['*']\ngateways: [gw.istio-system.svc.cluster.local]\ntcp: [{route: [{destination: {host: e}}]}]"),
        'using legacy gatewayName format "gw.istio-system.svc.cluster.local"; prefer the <namespace>/<name> format: '
        '"istio-system/gw"',
        id="vs-legacy-gateway-name",
    ),
    pytest.param(
        tls_vs("{match: [{sniHosts: [1.2.3.4]}], route: [{destination: {host: echo}}]}", hosts="['*']"),
        'using an IP address ("1.2.3.4") goes against SNI spec and most clients do not support this',
        id="tls-sni-ip",
    ),
    pytest.param(
        vs(
            "hosts: ['*']\ngateways: [gw]\n"
            "tcp: [{route: [{destination: {host: a}}]}, {route: [{destination: {host: b}}]}]"
        ),
        "virtualService rule #1 not used (only the last rule can have no matches)",
        id="tcp-unreachable-no-match",
    ),
    pytest.param(
        vs(
            "hosts: ['*']\ngateways: [gw]\ntcp:\n"
            "- {match: [{port: 1}], route: [{destination: {host: a}}]}\n"
            "- {match: [{port: 1}], route: [{destination: {host: b}}]}"
        ),
        "virtualService rule #1 match #0 is not used (duplicate/overlapping match in rule #0)",
        id="tcp-duplicate-match",
    ),
    pytest.param(
        vs(
            "hosts: ['*']\ngateways: [gw]\ntcp:\n"
            "- {match: [{port: 1}], route: [{destination: {host: a}}]}\n"
            "- {match: [{port: 1}], route: [{destination: {host: b}}]}"
        ),
        "virtualService rule #1 not used (all matches used by prior rules)",
        id="tcp-all-matches-used",
    ),
    pytest.param(
        tls_vs(
            "{match: [{sniHosts: [a.example.com]}], route: [{destination: {host: a}}]},"
            " {match: [{sniHosts: [a.example.com]}], route: [{destination: {host: b}}]}"
        ),
        "virtualService rule #1 match #0 is not used (duplicate/overlapping match in rule #0)",
        id="tls-duplicate-match",
    ),
    pytest.param(
        policy("{loadBalancer: {consistentHash: {minimumRingSize: 10}}}"),
        "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
        id="lb-minimum-ring-size-deprecated",
    ),
    pytest.param(
        dr("host: echo\nworkloadSelector: {matchLabels: {}}"),
        "workload selector specified without labels",
        id="dr-selector-no-labels",
    ),
    pytest.param(
        se("hosts: ['*foo.com']\nports: [{number: 80, name: http, protocol: HTTP}]"),
        'partial wildcard "*foo.com" not allowed',
        id="se-partial-wildcard",
    ),
    pytest.param(
        se("hosts: [a.example.com]\nports: [{number: 80, name: a}]\nworkloadSelector: {labels: {app: a}}"),
        "workloadSelector should not be set when resolution mode is NONE",
        id="se-none-selector",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: a}]\nresolution: STATIC\nworkloadSelector: {labels: {}}"
        ),
        "service entry: workload selector specified without labels, will be applied to all services in namespace",
        id="se-selector-no-labels",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com, b.example.com]\naddresses: [10.0.0.1]\nresolution: DNS\n"
            "ports: [{number: 80, name: tcp, protocol: TCP}]"
        ),
        "service entry can not have more than one host specified simultaneously with address and tcp port",
        id="se-dns-address-tcp-hosts",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: tcp, protocol: TCP}]",
            annotations="{networking.istio.io/enable-autoallocate-ip: 'false'}",
        ),
        "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
        id="se-addresses-required",
    ),
    pytest.param(we("network: n1"), 'address is unset with network "n1"', id="we-address-unset-network"),
]


@pytest.mark.parametrize(("text", "expected"), WARNINGS)
def test_rule_reports_warning(text: str, expected: str) -> None:
    found = [p for p in problems_of(text) if p.severity is Severity.WARNING]
    assert any(expected in p.message for p in found), "\n".join(map(str, problems_of(text)))


# --- valid inputs -----------------------------------------------------------------------------------

SEED_000_SERVICES = """
apiVersion: v1
kind: Service
metadata:
  name: tcp-echo
  labels:
    app: tcp-echo
    service: tcp-echo
spec:
  ports:
  - name: tcp
    port: 9000
  - name: tcp-other
    port: 9001
  selector:
    app: tcp-echo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tcp-echo-v1
  labels:
    app: tcp-echo
    version: v1
spec:
  replicas: 1
  selector:
    matchLabels:
      app: tcp-echo
      version: v1
  template:
    metadata:
      labels:
        app: tcp-echo
        version: v1
    spec:
      containers:
      - name: tcp-echo
        image: docker.io/istio/tcp-echo-server:1.2
        imagePullPolicy: IfNotPresent
        args: [ "9000,9001,9002", "one" ]
        ports:
        - containerPort: 9000
        - containerPort: 9001
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tcp-echo-v2
  labels:
    app: tcp-echo
    version: v2
spec:
  replicas: 1
  selector:
    matchLabels:
      app: tcp-echo
      version: v2
  template:
    metadata:
      labels:
        app: tcp-echo
        version: v2
    spec:
      containers:
      - name: tcp-echo
        image: docker.io/istio/tcp-echo-server:1.2
        imagePullPolicy: IfNotPresent
        args: [ "9000,9001,9002", "two" ]
        ports:
        - containerPort: 9000
        - containerPort: 9001
"""

SEED_000_ALL_V1 = """
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: tcp-echo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 31400
      name: tcp
      protocol: TCP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: tcp-echo-destination
spec:
  host: tcp-echo
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v1
"""

SEED_000_20_V2 = """
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v1
      weight: 80
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v2
      weight: 20
"""

SEED_002 = """
apiVersion: extensions/v1beta1
kind: Deployment
metadata:
  name: tcp-echo-v1
spec:
  replicas: 1
  template:
    metadata:
      labels:
        app: tcp-echo
        version: v1
    spec:
      containers:
      - name: tcp-echo
        image: istio/tcp-echo-server:1.1
        imagePullPolicy: IfNotPresent
        args: [ "9000", "one" ]
        ports:
        - containerPort: 9000
---
apiVersion: extensions/v1beta1
kind: Deployment
metadata:
  name: tcp-echo-v2
spec:
  replicas: 1
  template:
    metadata:
      labels:
        app: tcp-echo
        version: v2
    spec:
      containers:
      - name: tcp-echo
        image: istio/tcp-echo-server:1.1
        imagePullPolicy: IfNotPresent
        args: [ "9000", "two" ]
        ports:
        - containerPort: 9000
---
apiVersion: v1
kind: Service
metadata:
  name: tcp-echo
  labels:
    app: tcp-echo
spec:
  ports:
  - name: tcp
    port: 9000
  selector:
    app: tcp-echo
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: tcp-echo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 31400

      name: tcp
      protocol: TCP
    hosts:
    - "*"

---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400

    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000

        subset: v1
      weight: 80
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v2
      weight: 20
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: tcp-echo-destination
spec:
  host: tcp-echo
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
"""

SEED_003_INITIAL = """
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: tcp-echo-gateway
  namespace: istio-io-tcp-traffic-shifting
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 31400
      name: tcp
      protocol: TCP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: tcp-echo-routing
  namespace: istio-io-tcp-traffic-shifting
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
"""

SEED_003_SHIFT = """
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: tcp-echo-destination
  namespace: istio-io-tcp-traffic-shifting
spec:
  host: tcp-echo
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: tcp-echo-routing
  namespace: istio-io-tcp-traffic-shifting
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v1
      weight: 20
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v2
      weight: 80
"""

SEED_004 = """
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: tcp-echo-gateway
spec:
  selector:
    istio: ingressgateway # use istio default controller
  servers:
  - port:
      number: 31400
      name: tcp
      protocol: TCP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: tcp-echo-gateway-v2
spec:
  selector:
    istio: ingressgateway # use istio default controller
  servers:
  - port:
      number: 31401
      name: tcp
      protocol: TCP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  - tcp-echo-gateway-v2
  tcp:
  - match:
    - port: 31400
      gateways:
        - tcp-echo-gateway
    route:
    - destination:
        host: tcp-echo.default.svc.cluster.local
        subset: v1
        port:
          number: 3333
  - match:
    - port: 31401
      gateways:
        - tcp-echo-gateway-v2
    route:
    - destination:
        host: tcp-echo.default.svc.cluster.local
        subset: v2
        port:
          number: 3333
"""

VALID = [
    pytest.param(
        policy(
            "{outlierDetection: {interval: 1s}, loadBalancer: {localityLbSetting: {enabled: true, distribute: ["
            "{from: us-east/*, to: {us-east/*: 80, us-west/z1: 20}}, {from: us-west/*, to: {us-west/*: 100}}]},"
            " warmup: {duration: 30s, minimumPercent: 10, aggression: 2}}, connectionPool: {http: "
            "{http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE}}}"
        ),
        id="dr-locality-warmup-http-pool",
    ),
    pytest.param(
        policy(
            "{outlierDetection: {interval: 1s}, loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}],"
            " failoverPriority: [custom/label]}}}"
        ),
        id="dr-locality-failover",
    ),
    pytest.param(SEED_000_SERVICES, id="seed000-services"),
    pytest.param(SEED_000_ALL_V1, id="seed000-all-v1"),
    pytest.param(SEED_000_20_V2, id="seed000-20-v2"),
    pytest.param(SEED_002, id="seed002"),
    pytest.param(SEED_003_INITIAL, id="seed003-initial"),
    pytest.param(SEED_003_SHIFT, id="seed003-shift"),
    pytest.param(SEED_004, id="seed004"),
    pytest.param(
        server(hosts="['*/a.example.com', ./b.example.com, ns/c.example.com, 1.2.3.4, '*.d.example.com']"),
        id="gw-host-forms",
    ),
    pytest.param(
        server(", bind: 'unix:///var/run/gw.sock'", port="{number: 0, name: uds, protocol: TCP}"), id="gw-uds"
    ),
    pytest.param(server(", bind: 'unix://@abstract'", port="{number: 0, name: tcp, protocol: tcp}"), id="gw-lowercase"),
    pytest.param(server(", bind: 10.0.0.1", port="{number: 31400, name: mongo, protocol: MONGO}"), id="gw-bind-ip"),
    pytest.param(server(", tls: {}", port="{number: 443, name: tls, protocol: TLS}"), id="gw-tls-passthrough"),
    pytest.param(
        server(", tls: {mode: SIMPLE, credentialName: cert}", port="{number: 443, name: tls, protocol: TLS}"),
        id="gw-tls-simple-credential",
    ),
    pytest.param(
        server(
            ", tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k, caCertificates: /ca}",
            port="{number: 443, name: https, protocol: HTTPS}",
        ),
        id="gw-tls-mutual-files",
    ),
    pytest.param(
        server(", tls: {mode: ISTIO_MUTUAL}", port="{number: 15443, name: tls, protocol: TLS}"), id="gw-istio-mutual"
    ),
    pytest.param(
        server(", tls: {httpsRedirect: true}", port="{number: 80, name: http, protocol: HTTP}"), id="gw-https-redirect"
    ),
    pytest.param(
        tcp_vs(route="[{destination: {host: a}, weight: 550}, {destination: {host: b}, weight: 500}]"),
        id="vs-weights-over-100",
    ),
    pytest.param(
        tcp_vs(route="[{destination: {host: a}, weight: 1}, {destination: {host: b}}]"), id="vs-one-weight-zero"
    ),
    pytest.param(
        vs("hosts: [10.0.0.1, echo.default.svc.cluster.local]\ntcp: [{route: [{destination: {host: echo}}]}]"),
        id="vs-mesh-ip-host",
    ),
    pytest.param(
        vs(
            "hosts: ['*']\ngateways: [istio-system/gw, mesh]\n"
            "tcp: [{match: [{port: 80, destinationSubnets: [10.0.0.0/8, 10.1.1.1], sourceLabels: {app: a},"
            " gateways: [mesh]}], route: [{destination: {host: echo}}]}]"
        ).replace("hosts: ['*']", "hosts: [echo.example.com]"),
        id="vs-mesh-match",
    ),
    pytest.param(
        tls_vs(
            "{match: [{sniHosts: [a.example.com, b.a.example.com], port: 443}],"
            " route: [{destination: {host: echo, port: {number: 443}}}]}",
            hosts="[a.example.com, '*.a.example.com']",
        ),
        id="vs-tls-sni",
    ),
    pytest.param(
        tls_vs(
            "{match: [{sniHosts: [outbound_.80_._.e2e.foobar.mesh]}], route: [{destination: {host: echo}}]}",
            hosts="[outbound_.80_._.e2e.foobar.mesh]",
        ),
        id="vs-auto-passthrough-sni",
    ),
    pytest.param(
        vs(
            "hosts: ['*']\ngateways: [gw]\ntcp:\n"
            "- {match: [{port: 1}], route: [{destination: {host: a}}]}\n"
            "- {match: [{port: 2}], route: [{destination: {host: b}}]}\n"
            "- {route: [{destination: {host: c}}]}"
        ),
        id="vs-rules-reachable",
    ),
    pytest.param(
        vs("hosts: [a.example.com]\nexportTo: [., other, istio-system]\ntcp: [{route: [{destination: {host: e}}]}]"),
        id="vs-export-to",
    ),
    pytest.param(
        dr(
            "host: '*.example.com'\ntrafficPolicy:\n"
            "  connectionPool: {tcp: {maxConnections: 0, connectTimeout: 1s, idleTimeout: 0s}}\n"
            "  loadBalancer: {consistentHash: {maglev: {tableSize: 65537}}}\n"
            "  outlierDetection: {consecutiveLocalOriginFailures: 2, splitExternalLocalOriginErrors: true,"
            " maxEjectionPercent: 100, minHealthPercent: 0}\n"
            "  tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k, caCertificates: /ca}\n"
            "  portLevelSettings: [{port: {number: 80}, tls: {mode: ISTIO_MUTUAL}}]\n"
            "subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}]\n"
            "exportTo: ['*']"
        ),
        id="dr-full",
    ),
    pytest.param(
        policy("{tls: {mode: SIMPLE, credentialName: 'configmap://default/ca', sni: a.example.com}}"),
        id="dr-configmap-same-namespace",
    ),
    pytest.param(
        policy(
            "{tls: {mode: SIMPLE, insecureSkipVerify: true}, tunnel: {protocol: POST, targetHost: a.b, targetPort: 8}}"
        ),
        id="dr-insecure-tunnel",
    ),
    pytest.param(policy("{proxyProtocol: {version: V2}}"), id="dr-proxy-protocol"),
    pytest.param(
        dr("host: echo\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: [.]"), id="dr-selector-export-local"
    ),
    pytest.param(
        se(
            "hosts: [api.example.com]\naddresses: [10.1.0.0/16]\nports: [{number: 443, name: tls, protocol: TLS}]\n"
            "location: MESH_EXTERNAL\nresolution: NONE\nexportTo: ['~']"
        ),
        id="se-none-cidr",
    ),
    pytest.param(
        se(
            "hosts: [db.internal]\naddresses: [10.2.0.1]\nports: [{number: 5432, name: pg, protocol: TCP,"
            " targetPort: 15432}]\nresolution: STATIC\nendpoints: [{address: 10.2.0.10, ports: {pg: 5433},"
            " labels: {app: db}}, {address: 'unix:///var/run/db.sock'}]"
        ),
        id="se-static",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com, b.example.com]\nports: [{number: 443, name: https, protocol: HTTPS},"
            " {number: 80, name: http, protocol: HTTP}]\nresolution: DNS"
        ),
        id="se-dns-multi-host-http",
    ),
    pytest.param(
        se(
            "hosts: [a.example.com]\nports: [{number: 80, name: tcp}]\nresolution: DNS_ROUND_ROBIN\n"
            "endpoints: [{address: b.example.com}]"
        ),
        id="se-dns-rr",
    ),
    pytest.param(we("address: 10.0.0.1\nports: {tcp: 9000}\nlabels: {app: a, version: v1}"), id="we-ip"),
    pytest.param(we("address: vm1.example.com"), id="we-fqdn"),
    pytest.param(we("address: 'unix:///var/run/app.sock'"), id="we-unix"),
    pytest.param(svc("ports: [{port: 80}]"), id="svc-single-unnamed-port"),
    pytest.param(
        svc("ports: [{name: a, port: 80, targetPort: web}, {name: b, port: 81, protocol: UDP, targetPort: 8081}]"),
        id="svc-named-target-port",
    ),
    pytest.param(
        deploy("replicas: 0\nselector: {matchLabels: {app: a}}\n" + POD % "[{name: web, containerPort: 8080}]"),
        id="deploy-zero-replicas",
    ),
]


@pytest.mark.parametrize("text", VALID)
def test_valid_input_has_no_errors(text: str) -> None:
    assert errors_of(text) == []


# --- location ---------------------------------------------------------------------------------------

WEIGHT_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: x
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - route:
    - destination:
        host: echo
      weight: -1
"""

SUBNET_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: routes
  namespace: shop
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match:
    - port: 31400
      destinationSubnets:
      - 10.0.0.0/8
      - 300.0.0.0/8
    route:
    - destination: {host: echo}
"""

GATEWAY_TLS = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: edge
spec:
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*"]
  - port:
      number: 8443
      name: tls-2
      protocol: TLS
    hosts: ["*.example.com"]
    tls:
      mode: SIMPLE
      serverCertificate: /etc/cert.pem
"""

DR_SUBSETS = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: d
spec:
  host: echo
  subsets:
  - name: v1
  - name: v1
    labels: {version: v1}
"""

SE_PORTS = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: s
spec:
  hosts: [a.example.com]
  ports:
  - number: 80
    name: http
    protocol: HTTP
  - number: 80
    name: http-2
    protocol: HTTP
"""

SVC_PORTS = """\
apiVersion: v1
kind: Service
metadata:
  name: svc
spec:
  ports:
  - name: tcp
    port: 9000
  - port: 9001
"""

LOCATED = [
    pytest.param(
        WEIGHT_VS,
        "test.yaml:12: VirtualService default/x: spec.tcp[0].route[0].weight: weight -1 < 0",
        id="vs-weight",
    ),
    pytest.param(
        SUBNET_VS,
        "test.yaml:14: VirtualService shop/routes: spec.tcp[0].match[0].destinationSubnets[1]: "
        "300.0.0.0/8 is not a valid CIDR block",
        id="vs-subnet",
    ),
    pytest.param(
        GATEWAY_TLS,
        "test.yaml:7: Gateway default/edge: spec.servers[0].port.protocol: "
        "server must have TLS settings for HTTPS/TLS protocols",
        id="gw-tls-required",
    ),
    pytest.param(
        GATEWAY_TLS,
        "test.yaml:14: Gateway default/edge: spec.servers[1].tls: SIMPLE TLS requires a private key",
        id="gw-private-key",
    ),
    pytest.param(
        DR_SUBSETS,
        "test.yaml:9: DestinationRule default/d: spec.subsets[1].name: duplicate subset names: v1",
        id="dr-dup-subset",
    ),
    pytest.param(
        SE_PORTS,
        "test.yaml:11: ServiceEntry default/s: spec.ports[1].number: service entry port 80 already defined",
        id="se-dup-port",
    ),
    pytest.param(
        SVC_PORTS,
        "test.yaml:9: Service default/svc: spec.ports[1].name: Required value",
        id="svc-port-name",
    ),
    pytest.param(
        server(", tls: {mode: PASSTHROUGH, serverCertificate: /c}", port="{number: 443, name: tls, protocol: TLS}"),
        "test.yaml:7: Gateway default/gw: spec.servers[0].tls.mode: warning: PASSTHROUGH mode does not use "
        "certificates, they will be ignored",
        id="gw-warning",
    ),
]


@pytest.mark.parametrize(("text", "expected"), LOCATED)
def test_problem_is_located(text: str, expected: str) -> None:
    rendered = [str(p) for p in problems_of(text)]
    assert expected in rendered, "\n".join(rendered)


def test_problem_carries_identity_and_field() -> None:
    [problem] = problems_of(WEIGHT_VS)
    assert (problem.file, problem.line, problem.kind, problem.namespace, problem.name) == (
        "test.yaml",
        12,
        "VirtualService",
        "default",
        "x",
    )
    assert problem.field == "spec.tcp[0].route[0].weight"
    assert problem.is_error


def test_gateway_partial_problems_do_not_cascade() -> None:
    """A bad port skips the protocol/TLS pairing check, as istiod does (it only runs on a valid port)."""
    messages = [p.message for p in errors_of(server(port="{number: 0, name: tls, protocol: TLS}"))]
    assert messages == ["port number 0 must be in the range 1..65535"]


def test_gateway_names_stop_at_first_short_name() -> None:
    """validateGatewayNames returns after the first name without a slash; later names are not checked."""
    text = vs("hosts: ['*']\ngateways: [gw, Bad_NS/x]\ntcp: [{route: [{destination: {host: e}}]}]")
    assert errors_of(text) == []
