"""SDS: the ``Secret`` resources a proxy's listeners and clusters ask for (pilot/pkg/xds/sds.go SecretGen).

Only the names the proxy's own TLS contexts reference are served, each resolved as istiod does
(model/credentials.py) with its access rule (filterAuthorizedResources): ``kubernetes://name`` reads the proxy's
namespace and a ``kubernetes://ns/name`` in another namespace is refused; a ``kubernetes-gateway://ns/name``
came from a Gateway API certificateRef whose conversion checked the reference, so it is served as named.

A name that resolves to nothing (no such Secret, no usable keys, refused) is left out of the response, as istiod
does: the listener or cluster keeps naming it, Envoy waits for it (up to the initial fetch timeout, then the
chain refuses handshakes) and applying the Secret later completes it without touching the listener.
`resolve_names` says why each missing one is missing, for analyze and status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from tcpmesh.model.credentials import KUBERNETES_PREFIX, CertInfo, SecretRef, lookup, parse_resource_name
from tcpmesh.model.resources import Secret
from tcpmesh.translator.encoded import Encoded
from tcpmesh.translator.protos import base_pb2, tls_pb2
from tcpmesh.translator.tls import sds_names

__all__ = ["Resolved", "build_secrets", "cluster_sds_names", "listener_sds_names", "resolve_names"]


@dataclass(frozen=True, slots=True)
class Resolved:
    """One SDS resource name: what it serves, or why nothing."""

    resource_name: str
    ref: SecretRef | None
    info: CertInfo | None
    problem: str = ""


def listener_sds_names(listener: Any) -> list[str]:
    if isinstance(listener, Encoded):
        return []  # built as bytes only without a transport socket (gateway_wire.py)
    chains = [*listener.filter_chains]
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    out: list[str] = []
    for chain in chains:
        if chain.HasField("transport_socket"):
            context = tls_pb2.DownstreamTlsContext()
            if chain.transport_socket.typed_config.Unpack(context):
                out.extend(sds_names(context))
    return out


def cluster_sds_names(cluster: Any) -> list[str]:
    if isinstance(cluster, Encoded) or not cluster.HasField("transport_socket"):  # Encoded: never with one
        return []
    context = tls_pb2.UpstreamTlsContext()
    if not cluster.transport_socket.typed_config.Unpack(context):
        return []
    return sds_names(context)


def resolve_names(
    names: Iterable[str], proxy_namespace: str, secrets: Mapping[tuple[str, str], Secret]
) -> list[Resolved]:
    out = []
    for name in sorted(set(names)):
        ref = parse_resource_name(name, proxy_namespace)
        if isinstance(ref, str):
            out.append(Resolved(name, None, None, ref))
            continue
        if name.startswith(KUBERNETES_PREFIX) and ref.namespace != proxy_namespace:
            out.append(Resolved(name, ref, None, "cross namespace secret reference requires ReferencePolicy"))
            continue
        info = lookup(ref, secrets)
        if isinstance(info, str):
            out.append(Resolved(name, ref, None, info))
        else:
            out.append(Resolved(name, ref, info))
    return out


def _inline(data: bytes) -> Any:
    return base_pb2.DataSource(inline_bytes=data)


def secret_message(name: str, info: CertInfo) -> Any:
    """toEnvoyTLSSecret / toEnvoyCaSecret."""
    if not info.key:
        validation = common_pb2.CertificateValidationContext(trusted_ca=_inline(info.cert))
        if info.crl:
            validation.crl.CopyFrom(_inline(info.crl))
        return secret_pb2.Secret(name=name, validation_context=validation)
    certificate = common_pb2.TlsCertificate(certificate_chain=_inline(info.cert), private_key=_inline(info.key))
    if info.ocsp_staple:
        certificate.ocsp_staple.CopyFrom(_inline(info.ocsp_staple))
    return secret_pb2.Secret(name=name, tls_certificate=certificate)


def build_secrets(names: Iterable[str], proxy_namespace: str, secrets: Iterable[Secret]) -> list[Any]:
    """The Secret resources for the names a proxy references, sorted by name (missing ones left out)."""
    by_key = {(s.meta.namespace, s.meta.name): s for s in secrets}
    return [
        secret_message(r.resource_name, r.info)
        for r in resolve_names(names, proxy_namespace, by_key)
        if r.info is not None
    ]
