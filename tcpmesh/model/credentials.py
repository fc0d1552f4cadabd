"""``credentialName`` → SDS resource name → Secret, as istiod resolves them.

pilot/pkg/model/credentials/resource.go (ToResourceName, ParseResourceName) and
pilot/pkg/credentials/kube/secrets.go (ExtractCertInfo, ExtractRoot, GetCaCert):

* ``name`` becomes ``kubernetes://name``, read from the *proxy's* namespace (``kubernetes://ns/name`` names one);
  ``kubernetes-gateway://ns/name`` (what Gateway API certificateRefs become) always names its namespace;
* the CA of a credential is the resource ``<resource>-cacert``: a Secret called ``<name>-cacert``, else the
  ``cacert`` / ``ca.crt`` of ``<name>`` itself;
* a certificate comes from ``cert``+``key`` (generic) or ``tls.crt``+``tls.key`` (kubernetes.io/tls), empty
  values counting as missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tcpmesh.model.pickled import pickled_by_slots
from tcpmesh.model.resources import Secret

__all__ = [
    "CA_SUFFIX",
    "KUBERNETES_GATEWAY_PREFIX",
    "KUBERNETES_PREFIX",
    "CertInfo",
    "SecretRef",
    "ca_resource_name",
    "lookup",
    "parse_resource_name",
    "to_resource_name",
]

KUBERNETES_PREFIX = "kubernetes://"
KUBERNETES_GATEWAY_PREFIX = "kubernetes-gateway://"
CA_SUFFIX = "-cacert"


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class SecretRef:
    """A parsed SDS resource name: the Secret it reads and whether it wants the CA only."""

    resource_name: str
    namespace: str
    name: str
    ca_only: bool


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class CertInfo:
    """What one SDS resource serves: a certificate chain and key, or (``key`` empty) a CA bundle."""

    cert: bytes
    key: bytes = b""
    crl: bytes = b""
    ocsp_staple: bytes = b""
    source: Secret | None = None

    def __repr__(self) -> str:  # never the key
        return f"CertInfo(cert={len(self.cert)} bytes, key={'<redacted>' if self.key else 'none'})"


def to_resource_name(credential_name: str) -> str:
    """ToResourceName: an explicit ``kubernetes://`` / ``kubernetes-gateway://`` name is kept as it is."""
    if credential_name.startswith((KUBERNETES_PREFIX, KUBERNETES_GATEWAY_PREFIX)):
        return credential_name
    return KUBERNETES_PREFIX + credential_name


def ca_resource_name(credential_name: str) -> str:
    return to_resource_name(credential_name) + CA_SUFFIX


def parse_resource_name(resource_name: str, proxy_namespace: str) -> SecretRef | str:
    """ParseResourceName; a string is the reason the name is invalid."""
    if resource_name.startswith(KUBERNETES_PREFIX):
        rest = resource_name[len(KUBERNETES_PREFIX) :]
        namespace, slash, name = rest.partition("/")
        if not slash:
            namespace, name = proxy_namespace, rest
    elif resource_name.startswith(KUBERNETES_GATEWAY_PREFIX):
        namespace, slash, name = resource_name[len(KUBERNETES_GATEWAY_PREFIX) :].partition("/")
        if not slash:
            return f"invalid resource name {resource_name!r}. Expected namespace and name"
        if not namespace:
            return f"invalid resource name {resource_name!r}. Expected namespace"
    else:
        return f"unknown resource type: {resource_name}"
    name = name.split("/", 1)[0]
    if not name:
        return f"invalid resource name {resource_name!r}. Expected name"
    return SecretRef(resource_name, namespace, name, name.endswith(CA_SUFFIX))


def _cert_info(secret: Secret) -> CertInfo | str:
    """ExtractCertInfo."""
    if secret.value("cert") and secret.value("key"):
        return CertInfo(secret.value("cert"), secret.value("key"), secret.value("crl"), source=secret)
    if secret.value("tls.crt") and secret.value("tls.key"):
        return CertInfo(
            secret.value("tls.crt"),
            secret.value("tls.key"),
            secret.value("ca.crl"),
            secret.value("tls.ocsp-staple"),
            source=secret,
        )
    keys = secret.keys
    for cert, key in (("cert", "key"), ("tls.crt", "tls.key")):
        if cert in keys and key in keys:
            return f'found keys "{cert}" and "{key}", but they were empty'
    return "found secret, but didn't have expected keys (cert and key) or (tls.crt and tls.key); found: " + _found(keys)


def _root(secret: Secret) -> CertInfo | str:
    """ExtractRoot."""
    if secret.value("cacert"):
        return CertInfo(secret.value("cacert"), crl=secret.value("crl"), source=secret)
    if secret.value("ca.crt"):
        return CertInfo(secret.value("ca.crt"), crl=secret.value("ca.crl"), source=secret)
    for key in ("cacert", "ca.crt"):
        if key in secret.keys:
            return f'found key "{key}", but it was empty'
    return "found secret, but didn't have expected keys cacert or ca.crt; found: " + _found(secret.keys)


def _found(keys: tuple[str, ...]) -> str:
    """truncatedKeysMessage."""
    if len(keys) < 3:
        return ", ".join(keys)
    return f"{', '.join(keys[:3])}, and {len(keys) - 3} more..."


def lookup(ref: SecretRef, secrets: Mapping[tuple[str, str], Secret]) -> CertInfo | str:
    """SecretGen.generate: the certificate (or CA) an SDS resource serves; a string says why there is none."""
    if ref.ca_only:
        found = secrets.get((ref.namespace, ref.name))
        if found is None:
            stripped = ref.name[: -len(CA_SUFFIX)]
            found = secrets.get((ref.namespace, stripped))
            if found is None:
                return f"secret {ref.namespace}/{stripped} not found"
        return _root(found)
    found = secrets.get((ref.namespace, ref.name))
    if found is None:
        return f"secret {ref.namespace}/{ref.name} not found"
    return _cert_info(found)


def by_key(secrets: Iterable[Secret]) -> dict[tuple[str, str], Secret]:
    return {(s.meta.namespace, s.meta.name): s for s in secrets}
