"""Kubernetes Secrets in the model: parsing (data, stringData), validation with file:line, no value in any message,
and istiod's credentialName → SDS name → Secret resolution."""

from __future__ import annotations

import base64
import datetime as dt
import textwrap

import pytest

from tcpmesh.model.config import load_config_text
from tcpmesh.model.credentials import (
    CertInfo,
    SecretRef,
    by_key,
    ca_resource_name,
    lookup,
    parse_resource_name,
    to_resource_name,
)
from tcpmesh.model.resources import Secret
from tests.pki import TestCA, secret_yaml

CA = TestCA()
ISSUED = CA.issue(["gw.example.com"])


def load(text: str) -> tuple[list[Secret], list[str]]:
    config, problems = load_config_text(textwrap.dedent(text), "s.yaml")
    return list(config.secrets), [str(p) for p in problems]


def test_tls_secret_is_decoded_and_valid() -> None:
    (secret,), problems = load(secret_yaml("cred", "istio-system", ISSUED, ca=CA.pem))
    assert problems == []
    assert secret.type == "kubernetes.io/tls"
    assert secret.value("tls.crt") == ISSUED.cert
    assert secret.value("tls.key") == ISSUED.key
    assert secret.value("ca.crt") == CA.pem
    assert secret.keys == ("ca.crt", "tls.crt", "tls.key")


def test_string_data_wins_over_data_and_nothing_shows_values() -> None:
    pem = textwrap.indent(ISSUED.key.decode(), "    ")
    text = f"""apiVersion: v1
kind: Secret
metadata: {{name: cred, namespace: ns}}
data:
  key: {base64.b64encode(b"old").decode()}
  cert: {base64.b64encode(ISSUED.cert).decode()}
stringData:
  key: |
{pem}"""
    (secret,), problems = load(text)
    assert problems == []
    assert secret.value("key") == ISSUED.key
    shown = repr(secret) + str(secret)
    assert "PRIVATE" not in shown
    assert base64.b64encode(ISSUED.key).decode()[:40] not in shown
    assert "PRIVATE" not in repr(lookup(SecretRef("kubernetes://cred", "ns", "cred", False), by_key([secret])))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("  tls.crt: '!!notbase64'\n  tls.key: eA==\n", "s.yaml:6: Secret ns/bad: data.tls.crt: illegal base64 data"),
        ("  tls.crt: eA==\n", "s.yaml:5: Secret ns/bad: data[tls.key]: Required value"),
        ("  'a b': eA==\n", "Secret ns/bad: data.a b: a valid config key must consist of alphanumeric characters"),
        (
            "  tls.crt: " + base64.b64encode(b"not a certificate").decode() + "\n  tls.key: eA==\n",
            "s.yaml:6: Secret ns/bad: data.tls.crt: not a PEM-encoded X.509 certificate",
        ),
        (
            "  tls.crt: " + base64.b64encode(ISSUED.cert).decode() + "\n  tls.key: eA==\n",
            "s.yaml:7: Secret ns/bad: data.tls.key: not a PEM-encoded private key",
        ),
        (
            "  tls.crt: "
            + base64.b64encode(ISSUED.cert).decode()
            + "\n  tls.key: "
            + base64.b64encode(CA.issue(["other"]).key).decode()
            + "\n",
            "s.yaml:7: Secret ns/bad: data.tls.key: private key does not match the certificate in tls.crt",
        ),
    ],
)
def test_bad_secrets_are_located_errors(data: str, message: str) -> None:
    text = (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: bad, namespace: ns}}\ntype: kubernetes.io/tls\ndata:\n{data}"
    )
    _, problems = load(text)
    assert any(message in p for p in problems), problems
    for p in problems:
        assert "notbase64" not in p
        assert "BEGIN" not in p


def test_secrets_that_are_not_tls_material_are_left_alone() -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: app, namespace: ns}\nstringData: {key: s3cr3t, token: t}\n"
    (secret,), problems = load(text)
    assert problems == []
    assert secret.value("key") == b"s3cr3t"


def test_expired_certificate_is_a_warning() -> None:
    now = dt.datetime.now(dt.UTC)
    old = CA.issue(["old.example.com"], not_before=now - dt.timedelta(days=3), not_after=now - dt.timedelta(days=1))
    _, problems = load(secret_yaml("old", "ns", old))
    assert len(problems) == 1
    assert "warning: certificate is expired or not yet valid: CN=old.example.com is valid from" in problems[0]
    assert problems[0].startswith("s.yaml:7: Secret ns/old: data.tls.crt:")


def test_resource_names_as_istiod_makes_them() -> None:
    assert to_resource_name("cred") == "kubernetes://cred"
    assert ca_resource_name("cred") == "kubernetes://cred-cacert"
    assert to_resource_name("kubernetes-gateway://ns/cred") == "kubernetes-gateway://ns/cred"
    assert ca_resource_name("kubernetes-gateway://ns/cred") == "kubernetes-gateway://ns/cred-cacert"
    assert parse_resource_name("kubernetes://cred", "px") == SecretRef("kubernetes://cred", "px", "cred", False)
    assert parse_resource_name("kubernetes://ns/cred", "px") == SecretRef("kubernetes://ns/cred", "ns", "cred", False)
    assert parse_resource_name("kubernetes-gateway://ns/c-cacert", "px") == SecretRef(
        "kubernetes-gateway://ns/c-cacert", "ns", "c-cacert", True
    )
    assert parse_resource_name("kubernetes-gateway://cred", "px") == (
        "invalid resource name 'kubernetes-gateway://cred'. Expected namespace and name"
    )
    assert parse_resource_name("file-cert:/a~/b", "px") == "unknown resource type: file-cert:/a~/b"


def _secret(name: str, **values: bytes) -> Secret:
    from tcpmesh.model.resources import Meta

    meta = Meta(kind="Secret", api_version="v1", name=name, namespace="ns")
    return Secret(meta=meta, data=tuple(sorted((k.replace("_", "."), v) for k, v in values.items())))


def test_lookup_follows_getcacert_and_extractcertinfo() -> None:
    both = _secret("both", tls_crt=b"C", tls_key=b"K", ca_crt=b"A")
    generic = _secret("gen", cert=b"GC", key=b"GK", tls_crt=b"C", tls_key=b"K")
    ca_only = _secret("both-cacert", cacert=b"CA2")
    empty = _secret("empty", tls_crt=b"", tls_key=b"")
    secrets = by_key([both, generic, ca_only, empty])

    def find(name: str) -> CertInfo | str:
        ref = parse_resource_name(name, "ns")
        assert isinstance(ref, SecretRef)
        return lookup(ref, secrets)

    info = find("kubernetes://both")
    assert isinstance(info, CertInfo)
    assert (info.cert, info.key) == (b"C", b"K")
    generic_info = find("kubernetes://gen")
    assert isinstance(generic_info, CertInfo)
    assert (generic_info.cert, generic_info.key) == (b"GC", b"GK")  # cert/key first
    ca = find("kubernetes://both-cacert")
    assert isinstance(ca, CertInfo)
    assert (ca.cert, ca.key) == (b"CA2", b"")  # the -cacert Secret wins over ca.crt of "both"
    fallback = find("kubernetes://gen-cacert")
    assert (
        fallback
        == "found secret, but didn't have expected keys cacert or ca.crt; found: cert, key, tls.crt, and 1 more..."
    )
    assert find("kubernetes://empty") == 'found keys "tls.crt" and "tls.key", but they were empty'
    assert find("kubernetes://nope") == "secret ns/nope not found"
    assert find("kubernetes://nope-cacert") == "secret ns/nope not found"
