"""TLS contexts: gateway termination (DownstreamTlsContext) and DestinationRule origination (UpstreamTlsContext).

istiod builds these in pilot/pkg/networking/core/listener.go BuildListenerTLSContext and cluster_tls.go
constructUpstreamTLS. Certificates named by file path reach istio-proxy over SDS (``file-cert:<cert>~<key>``,
``file-root:<ca>``) because istio-agent reads the files and watches them for rotation. Plain Envoy has no agent,
so the same files are referenced inline as ``filename`` data sources: Envoy reads them when the listener or
cluster is (re)built, and a rotated file takes effect with the next config push rather than immediately.
``credentialName`` certificates are named by SDS resource (``kubernetes://<name>``, the CA as
``kubernetes://<name>-cacert``) fetched over ADS, exactly as istiod names them; the control plane serves those
``Secret`` resources (translator/secrets.py), so a rotated Secret changes only the SDS resource, never the
listener or cluster. ISTIO_MUTUAL needs istio-agent's workload certificate: not representable, the builders
return None and the caller leaves the server or cluster without that TLS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.type.matcher.v3 import string_pb2

from tcpmesh.model.credentials import ca_resource_name, to_resource_name
from tcpmesh.model.resources import ClientTLS, ServerTLS
from tcpmesh.translator.protos import base_pb2, config_source_pb2, pack, tls_pb2, wrappers_pb2

__all__ = [
    "ALPN_HTTP",
    "TERMINATING_MODES",
    "TLS_TRANSPORT_SOCKET",
    "downstream_tls_context",
    "sds_names",
    "transport_socket",
    "upstream_tls_context",
]

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
ALPN_HTTP = ("h2", "http/1.1")
"""util.ALPNHttp: istiod advertises it on every terminated gateway server, opaque TCP included."""
TERMINATING_MODES = frozenset({"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"})
"""Server modes that terminate with certificate files (ISTIO_MUTUAL needs istio-agent's SDS)."""

_common = tls_pb2.CommonTlsContext
_params = common_pb2.TlsParameters
_validation = common_pb2.CertificateValidationContext
_VERSIONS = {
    "TLS_AUTO": _params.TLS_AUTO,
    "TLSV1_0": _params.TLSv1_0,
    "TLSV1_1": _params.TLSv1_1,
    "TLSV1_2": _params.TLSv1_2,
    "TLSV1_3": _params.TLSv1_3,
}


def _file(path: str) -> Any:
    return base_pb2.DataSource(filename=path)


def _exact(names: Sequence[str]) -> list[Any]:
    """util.StringToExactMatch."""
    return [string_pb2.StringMatcher(exact=n) for n in names]


def _sds(resource_name: str) -> Any:
    """ConstructSdsSecretConfigForCredential: over ADS, API v3, Envoy's default initial fetch timeout (istiod
    leaves it on purpose: a missing Secret must not block the listener or cluster forever)."""
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    source.ads.SetInParent()
    return secret_pb2.SdsSecretConfig(name=resource_name, sds_config=source)


def _credential_server_context(tls: ServerTLS, common: Any) -> None:
    """ApplyCredentialSDSToServerCommonTLSContext: one SDS certificate per credential name; for (OPTIONAL_)MUTUAL
    the first credential's ``-cacert`` validates clients, combined with the server's SAN/SPKI/hash matchers."""
    names = tls.credential_names or (tls.credential_name,)
    for name in names:
        common.tls_certificate_sds_secret_configs.append(_sds(to_resource_name(name)))
    if tls.mode in ("MUTUAL", "OPTIONAL_MUTUAL"):
        combined = common.combined_validation_context
        combined.default_validation_context.SetInParent()
        combined.default_validation_context.MergeFrom(
            _validation(
                match_subject_alt_names=_exact(tls.subject_alt_names),
                verify_certificate_spki=tls.verify_certificate_spki,
                verify_certificate_hash=tls.verify_certificate_hash,
            )
        )
        combined.validation_context_sds_secret_config.CopyFrom(_sds(ca_resource_name(names[0])))
    elif tls.subject_alt_names:
        common.validation_context.match_subject_alt_names.extend(_exact(tls.subject_alt_names))


def sds_names(context: Any) -> list[str]:
    """The SDS resource names a Downstream/UpstreamTlsContext asks for, in order."""
    common = context.common_tls_context
    names = [c.name for c in common.tls_certificate_sds_secret_configs]
    if common.HasField("combined_validation_context"):
        names.append(common.combined_validation_context.validation_context_sds_secret_config.name)
    elif common.HasField("validation_context_sds_secret_config"):
        names.append(common.validation_context_sds_secret_config.name)
    return names


def transport_socket(context: Any) -> Any:
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=pack(context))


def downstream_tls_context(tls: ServerTLS) -> Any | None:
    """BuildListenerTLSContext for SIMPLE / MUTUAL / OPTIONAL_MUTUAL servers, by credentialName or files.

    ALPN ``h2,http/1.1``; a client certificate is required for MUTUAL and validated (when presented) for
    OPTIONAL_MUTUAL against ``caCertificates`` (or the credential's CA); protocol versions and cipher suites come
    from the server (applyServerTLSSettings; no meshConfig.tlsDefaults here).
    """
    if tls.mode not in TERMINATING_MODES:
        return None
    common = _common(alpn_protocols=ALPN_HTTP)
    if tls.credential_name or tls.credential_names:
        _credential_server_context(tls, common)
    else:
        _file_server_context(tls, common)
    _apply_server_settings(tls, common)
    return tls_pb2.DownstreamTlsContext(
        common_tls_context=common,
        require_client_certificate=wrappers_pb2.BoolValue(value=tls.mode == "MUTUAL"),
    )


def _file_server_context(tls: ServerTLS, common: Any) -> None:
    pairs = tls.tls_certificates or ((tls.server_certificate, tls.private_key),)
    for cert, key in pairs:
        common.tls_certificates.add(certificate_chain=_file(cert), private_key=_file(key))
    if tls.mode in ("MUTUAL", "OPTIONAL_MUTUAL"):
        # istiod: combined_validation_context {default_validation_context, SDS file-root:<ca>}.
        validation = _validation(
            match_subject_alt_names=_exact(tls.subject_alt_names),
            verify_certificate_spki=tls.verify_certificate_spki,
            verify_certificate_hash=tls.verify_certificate_hash,
        )
        if tls.ca_certificates:
            validation.trusted_ca.CopyFrom(_file(tls.ca_certificates))
        if tls.ca_crl:
            validation.crl.CopyFrom(_file(tls.ca_crl))
        common.validation_context.CopyFrom(validation)


def _apply_server_settings(tls: ServerTLS, common: Any) -> None:
    """applyServerTLSSettings."""
    if tls.min_protocol_version not in ("", "TLS_AUTO"):
        common.tls_params.tls_minimum_protocol_version = _VERSIONS[tls.min_protocol_version]
    if tls.cipher_suites:
        # security.FilterCipherSuites drops repeats (and names Envoy does not know; validation reports those).
        common.tls_params.cipher_suites.extend(dict.fromkeys(tls.cipher_suites))
    if tls.max_protocol_version not in ("", "TLS_AUTO"):
        common.tls_params.tls_maximum_protocol_version = _VERSIONS[tls.max_protocol_version]


def upstream_tls_context(tls: ClientTLS, fallback_sans: Sequence[str] = ()) -> Any | None:
    """cluster_tls.go constructUpstreamTLS for SIMPLE and MUTUAL; None for DISABLE and ISTIO_MUTUAL.

    TLS 1.2..1.3; ``sni`` as written; the CA defaults to the system roots (istiod's ``caCertificates: system``);
    no validation at all with insecureSkipVerify; ServiceEntry subjectAltNames stand in for missing DR SANs.
    With ``credentialName`` (ApplyCustomSDSToClientCommonTLSContext) the client certificate (MUTUAL) and the CA
    come by SDS.
    """
    if tls.mode not in ("SIMPLE", "MUTUAL"):
        return None
    common = _common(
        tls_params=_params(tls_minimum_protocol_version=_params.TLSv1_2, tls_maximum_protocol_version=_params.TLSv1_3)
    )
    if tls.credential_name:
        if tls.mode == "MUTUAL":
            common.tls_certificate_sds_secret_configs.append(_sds(to_resource_name(tls.credential_name)))
        if not tls.insecure_skip_verify:
            combined = common.combined_validation_context
            combined.default_validation_context.SetInParent()
            combined.default_validation_context.match_subject_alt_names.extend(
                _exact(tls.subject_alt_names or fallback_sans)
            )
            combined.validation_context_sds_secret_config.CopyFrom(_sds(ca_resource_name(tls.credential_name)))
        return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=tls.sni)
    if tls.mode == "MUTUAL":
        common.tls_certificates.add(certificate_chain=_file(tls.client_certificate), private_key=_file(tls.private_key))
    if tls.insecure_skip_verify:
        common.validation_context.SetInParent()
    else:
        validation = _validation(match_subject_alt_names=_exact(tls.subject_alt_names or fallback_sans))
        if tls.ca_certificates and tls.ca_certificates != "system":
            validation.trusted_ca.CopyFrom(_file(tls.ca_certificates))
        else:
            validation.system_root_certs.SetInParent()
        if tls.ca_crl:
            validation.crl.CopyFrom(_file(tls.ca_crl))
        common.validation_context.CopyFrom(validation)
    return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=tls.sni)
