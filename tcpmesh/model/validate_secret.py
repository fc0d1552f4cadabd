"""Secrets: the API server's rule for ``kubernetes.io/tls``, then what Envoy would refuse or istiod warns about.

Only what istiod would read as TLS material is checked: every key of a ``kubernetes.io/tls`` Secret, and in any
other Secret a complete ``cert``+``key`` or ``tls.crt``+``tls.key`` pair and the CA keys ``cacert``/``ca.crt``
(a generic Secret with a lone ``key`` is someone else's, e.g. an API key, and is left alone).
Certificates must be PEM X.509 (Envoy rejects the whole SDS update otherwise), a private key must be a PEM key
matching the certificate it is paired with, and a certificate outside its validity period is reported as istiod
does (``ValidateCertificate``: "certificate is expired or not yet valid"), as a warning: istiod still serves it.
No message quotes a value.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import Secret
from tcpmesh.model.validate_common import Reporter

__all__ = ["validate_secret"]

_TLS_TYPE = "kubernetes.io/tls"
_CERT_KEYS = ("cert", "tls.crt", "cacert", "ca.crt")
_PAIRS = (("cert", "key"), ("tls.crt", "tls.key"))


def _path(secret: Secret, key: str) -> str:
    return f"stringData.{key}" if f"stringData.{key}" in secret.meta.field_lines else f"data.{key}"


def _certificates(r: Reporter, secret: Secret, key: str, now: datetime) -> list[x509.Certificate]:
    path = _path(secret, key)
    try:
        certs = x509.load_pem_x509_certificates(secret.value(key))
    except ValueError:
        r.err(path, "not a PEM-encoded X.509 certificate")
        return []
    for cert in certs:
        if now > cert.not_valid_after_utc or now < cert.not_valid_before_utc:
            subject = cert.subject.rfc4514_string() or "(no subject)"
            r.warn(
                path,
                f"certificate is expired or not yet valid: {subject} is valid from "
                f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
            )
    return certs


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def validate_secret(secret: Secret, now: datetime | None = None) -> list[Problem]:
    r = Reporter(secret.meta)
    now = now or datetime.now(UTC)
    keys = secret.keys
    tls_type = secret.type == _TLS_TYPE
    if tls_type:
        for key in ("tls.crt", "tls.key"):
            if key not in keys:
                r.err(f"data[{key}]", "Required value")
    pairs = [(c, k) for c, k in _PAIRS if c in keys and k in keys]
    checked = {k for pair in pairs for k in pair} | {"cacert", "ca.crt"} | ({"tls.crt"} if tls_type else set())
    certs: dict[str, list[x509.Certificate]] = {}
    for key in _CERT_KEYS:
        if key in checked and secret.value(key):
            certs[key] = _certificates(r, secret, key, now)
    for cert_key, key_key in pairs:
        if not secret.value(key_key):
            continue
        path = _path(secret, key_key)
        try:
            private = serialization.load_pem_private_key(secret.value(key_key), password=None)
        except (ValueError, TypeError):
            r.err(path, "not a PEM-encoded private key (an unencrypted PKCS#1, PKCS#8 or SEC1 key)")
            continue
        chain = certs.get(cert_key)
        if chain and _spki(private.public_key()) != _spki(chain[0].public_key()):
            r.err(path, f"private key does not match the certificate in {cert_key}")
    return r.problems
