"""Gateway admission rules: ``ValidateGateway``, ``validateServer``, ``validateServerPort``, ``validateServerBind``
and ``validateTLSOptions`` (istio/istio ``pkg/config/validation/validation.go``)."""

from __future__ import annotations

from tcpmesh.model.hostnames import (
    UNIX_PREFIX,
    go_quote,
    is_dns1123_label,
    validate_ip_address,
    validate_namespace_slash_wildcard_hostname,
    validate_port,
    validate_unix_address,
)
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import Gateway, Server, ServerPort, ServerTLS
from tcpmesh.model.validate_common import UNSUPPORTED, Reporter, parse_protocol, protocol_is_http, protocol_is_tls

__all__ = ["validate_gateway"]

# security.ValidCipherSuites (BoringSSL names Envoy accepts in Gateway server.tls.cipherSuites).
_VALID_CIPHERS = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    }
)


def validate_gateway(gw: Gateway) -> list[Problem]:
    r = Reporter(gw.meta)
    # Gateway names become listener/route names: a DNS-1123 label. An empty name is a parse error already.
    if gw.meta.name and not is_dns1123_label(gw.meta.name):
        r.err("metadata.name", f"invalid gateway name: {go_quote(gw.meta.name)}")
    if not gw.servers:
        r.err("spec.servers" if r.has("spec.servers") else "spec", "gateway must have at least one server")
    for i, server in enumerate(gw.servers):
        _server(r, f"spec.servers[{i}]", server)
    # Port names name the listener's filter chains: unique across the Gateway's servers.
    names: set[str] = set()
    for i, server in enumerate(gw.servers):
        path = f"spec.servers[{i}]"
        if not r.has(f"{path}.port"):
            continue
        if server.port.name in names:
            r.err(f"{path}.port.name", f"port names in servers must be unique: duplicate name {server.port.name}")
        names.add(server.port.name)
        if (
            server.tls is not None
            and server.tls.https_redirect
            and not protocol_is_http(parse_protocol(server.port.protocol))
        ):
            r.warn(f"{path}.tls.httpsRedirect", "tls.httpsRedirect should only be used with http servers")
    return r.problems


def _port_text(port: ServerPort) -> str:
    """Go's ``%v`` of the Port message (prototext, zero fields omitted)."""
    parts = []
    if port.number:
        parts.append(f"number:{port.number}")
    if port.protocol:
        parts.append(f"protocol:{go_quote(port.protocol)}")
    if port.name:
        parts.append(f"name:{go_quote(port.name)}")
    if port.target_port:
        parts.append(f"target_port:{port.target_port}")
    return " ".join(parts)


def _server(r: Reporter, path: str, server: Server) -> None:
    """validateServer."""
    if not server.hosts:
        r.err(f"{path}.hosts" if r.has(f"{path}.hosts") else path, "server config must contain at least one host")
    for j, host in enumerate(server.hosts):
        for message in validate_namespace_slash_wildcard_hostname(host):
            r.err(f"{path}.hosts[{j}]", message)
    has_port = r.has(f"{path}.port")
    port_ok = has_port and _server_port(r, f"{path}.port", server.port, server.bind)
    _server_bind(r, path, server.port if has_port else None, server.bind)
    if server.tls is not None:
        _tls_options(r, f"{path}.tls", server.tls)
    # "port is required" is reported by the parser; the protocol/TLS pairing is only checked on a valid port.
    if not port_ok:
        return
    protocol = parse_protocol(server.port.protocol)
    if protocol_is_tls(protocol) and server.tls is None:
        r.err(f"{path}.port.protocol", "server must have TLS settings for HTTPS/TLS protocols")
    elif not protocol_is_tls(protocol) and server.tls is not None:
        if protocol_is_http(protocol):
            # Only an httpsRedirect-style block (PASSTHROUGH/AUTO_PASSTHROUGH, no certificates) is allowed.
            tls = server.tls
            passthrough = tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH")
            if not passthrough or tls.ca_certificates or tls.private_key or tls.server_certificate:
                r.err(f"{path}.tls", "server cannot have TLS settings for plain text HTTP ports")
        else:
            r.err(f"{path}.tls", "server cannot have TLS settings for non HTTPS/TLS ports")


def _server_port(r: Reporter, path: str, port: ServerPort, bind: str) -> bool:
    """validateServerPort; True when the port has no errors."""
    before = len(r.problems)
    if parse_protocol(port.protocol) == UNSUPPORTED:
        r.err(
            f"{path}.protocol",
            f"invalid protocol {go_quote(port.protocol)}, supported protocols are "
            "HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
        )
    # Port 0 is allowed only for a unix-socket bind.
    if port.number > 0 or not bind.startswith(UNIX_PREFIX):
        r.err(f"{path}.number", validate_port(port.number))
    if port.target_port > 0:
        r.err(f"{path}.targetPort", "targetPort has no impact on Gateways")
    if not port.name:
        r.err(f"{path}.name" if r.has(f"{path}.name") else path, f"port name must be set: {_port_text(port)}")
    return len(r.problems) == before


def _server_bind(r: Reporter, path: str, port: ServerPort | None, bind: str) -> None:
    """validateServerBind: a unix socket path (port 0) or an IP."""
    if bind.startswith(UNIX_PREFIX):
        r.err(f"{path}.bind", validate_unix_address(bind.removeprefix(UNIX_PREFIX)))
        if port is not None and port.number != 0:
            r.err(f"{path}.port.number", f"port number must be 0 for unix domain socket: {_port_text(port)}")
    elif bind:
        r.err(f"{path}.bind", validate_ip_address(bind))


def _tls_options(r: Reporter, path: str, tls: ServerTLS) -> None:
    """validateTLSOptions."""
    if tls.min_protocol_version in ("TLSV1_0", "TLSV1_1") and not tls.cipher_suites:
        r.warn(
            f"{path}.minProtocolVersion",
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include "
            "compatible ciphers.",
        )
    invalid: set[str] = set()
    valid: set[str] = set()
    duplicate: set[str] = set()
    for cipher in tls.cipher_suites:
        if not _is_valid_cipher(cipher):
            invalid.add(cipher)
        elif cipher in valid:
            duplicate.add(cipher)
        else:
            valid.add(cipher)
    if invalid:
        r.warn(f"{path}.cipherSuites", f"ignoring invalid cipher suites: [{' '.join(sorted(invalid))}]")
    if duplicate:
        r.warn(f"{path}.cipherSuites", f"ignoring duplicate cipher suites: [{' '.join(sorted(duplicate))}]")

    if tls.mode == "ISTIO_MUTUAL":
        # ISTIO_MUTUAL uses the workload certificate; any other source is a mistake.
        if tls.server_certificate:
            r.err(f"{path}.serverCertificate", "ISTIO_MUTUAL TLS cannot have associated server certificate")
        if tls.private_key:
            r.err(f"{path}.privateKey", "ISTIO_MUTUAL TLS cannot have associated private key")
        if tls.ca_certificates:
            r.err(f"{path}.caCertificates", "ISTIO_MUTUAL TLS cannot have associated CA bundle")
        if tls.tls_certificate_count:
            r.err(f"{path}.tlsCertificates", "ISTIO_MUTUAL TLS cannot have associated tlsCertificates")
        if tls.credential_name:
            r.err(f"{path}.credentialName", "ISTIO_MUTUAL TLS cannot have associated credentialName")
        if tls.credential_names:
            r.err(f"{path}.credentialNames", "ISTIO_MUTUAL TLS cannot have associated credentialNames")
        return

    if tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and (
        tls.ca_crl
        or tls.server_certificate
        or tls.private_key
        or tls.ca_certificates
        or tls.tls_certificate_count
        or tls.credential_name
        or tls.credential_names
    ):
        # A warning only, for backwards compatibility.
        r.warn(
            f"{path}.mode" if r.has(f"{path}.mode") else path,
            f"{tls.mode} mode does not use certificates, they will be ignored",
        )

    sources = sum(
        (
            bool(tls.server_certificate and tls.private_key),
            bool(tls.credential_name),
            bool(tls.credential_names),
            bool(tls.tls_certificate_count),
        )
    )
    if sources > 1:
        r.err(
            path,
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates "
            "should be specified",
        )

    terminating = tls.mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
    if terminating and (tls.credential_name or tls.credential_names):
        return  # certificates come from the credential (SDS)
    if terminating:
        prefix = "SIMPLE TLS" if tls.mode == "SIMPLE" else "MUTUAL TLS"
        if prefix == "MUTUAL TLS" and not tls.ca_certificates:
            r.err(
                f"{path}.caCertificates" if r.has(f"{path}.caCertificates") else path,
                f"{prefix} requires a client CA bundle",
            )
        if tls.tls_certificate_count > 2:
            r.warn(f"{path}.tlsCertificates", f"{prefix} can support up to 2 server certificates")
        if tls.tls_certificate_count:
            certs = [(f"{path}.tlsCertificates[{k}]", c) for k, c in enumerate(tls.tls_certificates)]
        else:
            certs = [(path, (tls.server_certificate, tls.private_key))]
        for at, (cert, key) in certs:
            if not cert:
                r.err(at, f"{prefix} requires a server certificate")
            if not key:
                r.err(at, f"{prefix} requires a private key")
    if tls.ca_crl:
        if tls.credential_name:
            r.err(
                f"{path}.caCrl", "CRL is not supported with credentialName. CRL has to be specified in the credential"
            )
        if tls.mode == "SIMPLE":
            r.err(f"{path}.caCrl", "CRL is not supported with SIMPLE TLS")


def _is_valid_cipher(cipher: str) -> bool:
    """security.IsValidCipherSuite: known names, "" / ALL, and OpenSSL operator expressions (-, +, !, [)."""
    if cipher in ("", "ALL"):
        return True
    if not cipher[0].isalnum():
        return True
    return cipher in _VALID_CIPHERS
