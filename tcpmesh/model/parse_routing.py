"""Gateway and VirtualService specs → typed values."""

from __future__ import annotations

from typing import TypedDict

from tcpmesh.model.parse_http import parse_http_routes
from tcpmesh.model.reader import Reader
from tcpmesh.model.resources import (
    Destination,
    Gateway,
    L4Match,
    Meta,
    RouteDestination,
    Server,
    ServerPort,
    ServerTLS,
    TCPRoute,
    TLSMatch,
    TLSRoute,
    VirtualService,
)

__all__ = ["parse_gateway", "parse_virtual_service"]

_TLS_SERVER_MODES = ("PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL")
_TLS_VERSIONS = ("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")


# --- Gateway ------------------------------------------------------------------------------------


def parse_gateway(r: Reader, meta: Meta) -> Gateway:
    servers: list[Server] = []
    for _, s in r.objects("servers"):
        if s is None:
            r.report("servers", "server may not be nil")
            continue
        port_r = s.obj("port")
        port = ServerPort(number=0, name="", protocol="")
        if port_r is not None:
            port = ServerPort(
                number=port_r.integer("number", proto="uint32"),
                name=port_r.string("name"),
                protocol=port_r.string("protocol"),
                target_port=port_r.integer("targetPort", proto="uint32"),
            )
            port_r.finish()
        tls_r = s.obj("tls")
        tls = _server_tls(tls_r) if tls_r is not None else None
        servers.append(
            Server(
                port=port,
                hosts=s.str_list("hosts"),
                bind=s.string("bind"),
                tls=tls,
                name=s.string("name"),
                default_endpoint=s.string("defaultEndpoint"),
            )
        )
        if not s.has("port"):
            s.report(None, "port is required")
        s.finish()
    return Gateway(meta=meta, selector=r.labels("selector") or (), servers=tuple(servers))


def _server_tls(r: Reader) -> ServerTLS:
    certs = 0
    pairs: list[tuple[str, str]] = []
    for _, c in r.objects("tlsCertificates"):
        certs += 1
        if c is not None:
            pairs.append((c.string("serverCertificate"), c.string("privateKey")))
            c.string("caCertificates")
            c.finish()
    tls = ServerTLS(
        mode=r.enum("mode", _TLS_SERVER_MODES, "PASSTHROUGH"),
        server_certificate=r.string("serverCertificate"),
        private_key=r.string("privateKey"),
        ca_certificates=r.string("caCertificates"),
        ca_crl=r.string("caCrl"),
        credential_name=r.string("credentialName"),
        credential_names=r.str_list("credentialNames"),
        tls_certificate_count=certs,
        tls_certificates=tuple(pairs),
        subject_alt_names=r.str_list("subjectAltNames"),
        verify_certificate_spki=r.str_list("verifyCertificateSpki"),
        verify_certificate_hash=r.str_list("verifyCertificateHash"),
        min_protocol_version=r.enum("minProtocolVersion", _TLS_VERSIONS),
        max_protocol_version=r.enum("maxProtocolVersion", _TLS_VERSIONS),
        cipher_suites=r.str_list("cipherSuites"),
        https_redirect=r.boolean("httpsRedirect"),
    )
    r.ignore("ecdhCurves")
    r.finish()
    return tls


# --- VirtualService -----------------------------------------------------------------------------


def _route_destinations(r: Reader) -> tuple[RouteDestination, ...]:
    out: list[RouteDestination] = []
    for _, d in r.objects("route"):
        if d is None:
            r.report("route", "destination is required")
            continue
        dest_r = d.obj("destination")
        dest = Destination(host="")
        if dest_r is None:
            d.report(None, "destination is required")
        else:
            port = 0
            port_r = dest_r.obj("port")
            if port_r is not None:
                port = port_r.integer("number", proto="uint32")
                port_r.finish()
            dest = Destination(host=dest_r.string("host"), subset=dest_r.string("subset"), port=port)
            dest_r.finish()
        out.append(RouteDestination(destination=dest, weight=d.integer("weight")))
        d.finish()
    return tuple(out)


class _L4Fields(TypedDict):
    destination_subnets: tuple[str, ...]
    port: int
    source_labels: tuple[tuple[str, str], ...]
    gateways: tuple[str, ...]
    source_namespace: str


def _l4_match_fields(m: Reader) -> _L4Fields:
    return {
        "destination_subnets": m.str_list("destinationSubnets"),
        "port": m.integer("port", proto="uint32"),
        "source_labels": m.labels("sourceLabels") or (),
        "gateways": m.str_list("gateways"),
        "source_namespace": m.string("sourceNamespace"),
    }


def parse_virtual_service(r: Reader, meta: Meta) -> VirtualService:
    tcp: list[TCPRoute] = []
    for _, t in r.objects("tcp"):
        if t is None:
            r.report("tcp", "tcp route may not be null")
            continue
        matches: list[L4Match] = []
        for _, m in t.objects("match"):
            if m is None:
                t.report("match", "tcp match may not be nil")
                continue
            matches.append(L4Match(**_l4_match_fields(m)))
            m.finish()
        tcp.append(TCPRoute(match=tuple(matches), route=_route_destinations(t)))
        t.finish()
    tls: list[TLSRoute] = []
    for _, t in r.objects("tls"):
        if t is None:
            r.report("tls", "TLS route may not be null")
            continue
        tls_matches: list[TLSMatch] = []
        for _, m in t.objects("match"):
            if m is None:
                t.report("match", "TLS match may not be null")
                continue
            tls_matches.append(TLSMatch(sni_hosts=m.str_list("sniHosts"), **_l4_match_fields(m)))
            m.finish()
        tls.append(TLSRoute(match=tuple(tls_matches), route=_route_destinations(t)))
        t.finish()
    http = parse_http_routes(r)
    return VirtualService(
        meta=meta,
        hosts=r.str_list("hosts"),
        gateways=r.str_list("gateways"),
        tcp=tuple(tcp),
        tls=tuple(tls),
        http=http,
        export_to=r.str_list("exportTo"),
    )
