"""Certificates made in the test with ``cryptography``: a CA, leaf certificates it signs, Secret YAML carrying them."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Issued", "TestCA", "secret_yaml"]

_PEM = serialization.Encoding.PEM


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass(frozen=True)
class Issued:
    cert: bytes = field(repr=False)
    key: bytes = field(repr=False)
    serial: int = 0

    @property
    def der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert).public_bytes(serialization.Encoding.DER)


class TestCA:
    """A throwaway CA (EC P-256) issuing server and client certificates."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "tcpmesh test CA") -> None:
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(_PEM)

    def issue(
        self,
        names: list[str],
        *,
        client: bool = False,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        key = _key()
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before or now - dt.timedelta(hours=1))
            .not_valid_after(not_after or now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return Issued(cert.public_bytes(_PEM), _key_pem(key), serial)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret_yaml(
    name: str,
    namespace: str,
    issued: Issued | None = None,
    *,
    ca: bytes | None = None,
    generic: bool = False,
) -> str:
    """A Secret of type kubernetes.io/tls (tls.crt, tls.key, ca.crt) or generic (cert, key, cacert)."""
    cert_key, key_key, ca_key = ("cert", "key", "cacert") if generic else ("tls.crt", "tls.key", "ca.crt")
    data = {}
    if issued is not None:
        data[cert_key] = _b64(issued.cert)
        data[key_key] = _b64(issued.key)
    if ca is not None:
        data[ca_key] = _b64(ca)
    kind = "Opaque" if generic or issued is None else "kubernetes.io/tls"
    lines = "".join(f"  {k}: {v}\n" for k, v in data.items())
    head = f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
    return f"{head}type: {kind}\ndata:\n{lines}"
