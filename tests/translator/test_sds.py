"""SDS Secrets in translation: only the names a proxy's config references, rotation touching only the Secret,
istiod's access and sidecar rules, the snapshot check, and redaction of every printed form."""

from __future__ import annotations

from typing import Any

from tcpmesh.model.config import Config, load_config_text
from tcpmesh.publisher import KIND_TYPES
from tcpmesh.render import REDACTED, message_to_dict
from tcpmesh.snapshot_check import check_snapshot
from tcpmesh.store.redact import redact_object
from tcpmesh.translator import Proxy, translate
from tcpmesh.translator.incremental import IncrementalTranslator
from tcpmesh.translator.secrets import cluster_sds_names
from tcpmesh.xds.cache import SnapshotCache
from tests.pki import TestCA, secret_yaml

CA = TestCA()
OLD, NEW = CA.issue(["gw.example.com"]), CA.issue(["gw.example.com"])
GATEWAY = Proxy()  # namespace istio-system


def gateway(mode: str = "SIMPLE", credential: str = "cred", port: int = 9443) -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: tls, protocol: TLS}}
    hosts: ["*"]
    tls: {{mode: {mode}, credentialName: {credential}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  tcp:
  - route: [{{destination: {{host: echo.default.svc.cluster.local, port: {{number: 7000}}}}}}]
"""


def config(text: str) -> Config:
    loaded, problems = load_config_text(text)
    assert not [p for p in problems if p.is_error], problems
    return loaded


def names(resources: Any) -> list[str]:
    return [s.name for s in resources.secrets]


def test_only_referenced_secrets_in_the_proxy_namespace_are_served() -> None:
    text = gateway("MUTUAL") + secret_yaml("cred", "istio-system", OLD, ca=CA.pem)
    text += secret_yaml("other", "istio-system", OLD) + secret_yaml("cred", "default", NEW)
    out = translate(config(text), GATEWAY)
    assert names(out) == ["kubernetes://cred", "kubernetes://cred-cacert"]
    cert = out.secrets[0].tls_certificate
    assert cert.certificate_chain.inline_bytes == OLD.cert  # istio-system's, not default's
    assert out.secrets[1].validation_context.trusted_ca.inline_bytes == CA.pem
    # A proxy in another namespace reads that namespace's Secret of the same name.
    other = translate(config(text), Proxy(namespace="default"))
    assert other.secrets[0].tls_certificate.certificate_chain.inline_bytes == NEW.cert


def test_cross_namespace_kubernetes_name_is_refused_gateway_api_name_is_served() -> None:
    text = gateway(credential="kubernetes://default/cred") + secret_yaml("cred", "default", OLD)
    assert names(translate(config(text), GATEWAY)) == []
    text = gateway(credential="kubernetes-gateway://default/cred") + secret_yaml("cred", "default", OLD)
    assert names(translate(config(text), GATEWAY)) == ["kubernetes-gateway://default/cred"]


def test_rotation_changes_only_the_secret() -> None:
    inc = IncrementalTranslator(GATEWAY)
    first = inc.update(config(gateway() + secret_yaml("cred", "istio-system", OLD)))
    listener = first.listeners[0].SerializeToString(deterministic=True)
    rotated_config = config(gateway() + secret_yaml("cred", "istio-system", NEW))
    rotated = inc.update(rotated_config)
    assert inc.changes.mode == "incremental"
    assert inc.changes.changed == {"secrets": frozenset({"kubernetes://cred"})}
    assert rotated.listeners[0].SerializeToString(deterministic=True) == listener
    assert rotated.secrets[0].tls_certificate.certificate_chain.inline_bytes == NEW.cert
    assert inc.serialized()["secrets"]["kubernetes://cred"] == rotated.secrets[0].SerializeToString(deterministic=True)
    assert rotated == translate(rotated_config, GATEWAY)


def test_secret_follows_the_reference_and_missing_one_is_named_not_served() -> None:
    inc = IncrementalTranslator(GATEWAY)
    secrets = secret_yaml("cred", "istio-system", OLD) + secret_yaml("cred2", "istio-system", NEW)
    assert names(inc.update(config(gateway() + secrets))) == ["kubernetes://cred"]
    assert names(inc.update(config(gateway(credential="cred2") + secrets))) == ["kubernetes://cred2"]
    assert inc.changes.removed["secrets"] == {"kubernetes://cred"}
    missing = inc.update(config(gateway(credential="nope") + secrets))
    assert names(missing) == []
    assert "kubernetes://nope" in str(missing.listeners[0])


def test_sidecar_gets_dr_credential_only_with_a_workload_selector() -> None:
    def rule(selector: str) -> str:
        return f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: default}}
spec:
  host: echo.default.svc.cluster.local{selector}
  trafficPolicy:
    tls: {{mode: MUTUAL, credentialName: client-cred}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec:
  selector: {{app: echo}}
  ports: [{{name: tcp, port: 7000}}]
""" + secret_yaml("client-cred", "default", OLD, ca=CA.pem)

    sidecar = Proxy(role="sidecar", namespace="default", labels=(("app", "sleep"),))
    plain = translate(config(rule("")), sidecar)
    (echo,) = [c for c in plain.clusters if "echo" in c.name]
    assert not echo.HasField("transport_socket")
    assert names(plain) == []
    selected = translate(config(rule("\n  workloadSelector: {matchLabels: {app: sleep}}")), sidecar)
    (echo,) = [c for c in selected.clusters if "echo" in c.name]
    assert cluster_sds_names(echo) == ["kubernetes://client-cred", "kubernetes://client-cred-cacert"]
    assert names(selected) == ["kubernetes://client-cred", "kubernetes://client-cred-cacert"]


def _snapshot(resources: Any) -> Any:
    by_type = {
        url: [
            (m.name if kind != "endpoints" else m.cluster_name, m, m.SerializeToString())
            for m in getattr(resources, kind)
        ]
        for kind, url in KIND_TYPES.items()
    }
    return SnapshotCache().build_serialized(by_type, None, {})


def test_snapshot_check_allows_a_missing_secret_and_refuses_a_stray_one() -> None:
    missing = translate(config(gateway()), GATEWAY)
    assert check_snapshot(_snapshot(missing)) == []
    served = translate(config(gateway() + secret_yaml("cred", "istio-system", OLD)), GATEWAY)
    stray = type(served)(
        listeners=(), clusters=served.clusters, endpoints=(), extension_configs=(), secrets=served.secrets
    )
    (found,) = check_snapshot(_snapshot(stray))
    assert (found.kind, found.name) == ("Secret", "kubernetes://cred")


def test_every_printed_form_redacts_the_key() -> None:
    out = translate(config(gateway() + secret_yaml("cred", "istio-system", OLD)), GATEWAY)
    shown = message_to_dict(out.secrets[0])
    assert shown["tls_certificate"]["private_key"] == {"inline_string": REDACTED}
    assert "certificate_chain" in shown["tls_certificate"]
    obj = {"kind": "Secret", "data": {"tls.crt": "C", "tls.key": "K", "password": "P"}, "stringData": {"key": "K"}}
    obj["metadata"] = {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...K...}"}}
    assert redact_object(obj) == {
        "kind": "Secret",
        "data": {"tls.crt": "C", "tls.key": REDACTED, "password": REDACTED},
        "stringData": {"key": REDACTED},
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": REDACTED}},
    }
    assert redact_object({"kind": "Gateway", "data": {"x": 1}}) == {"kind": "Gateway", "data": {"x": 1}}
