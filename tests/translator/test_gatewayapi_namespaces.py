"""Same-named Gateway API Gateways in two namespaces: each namespace's proxies get their own Gateway's listeners
only (istiod matches a converted Gateway through its deployment's Service, in the Gateway's namespace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpmesh.cli import main
from tcpmesh.model.config import load_config_text
from tcpmesh.translator import Proxy, TranslateOptions, translate

LABEL = "gateway.networking.k8s.io/gateway-name"


def two_gateways() -> str:
    text = ""
    for ns, port in (("team-a", 9001), ("team-b", 9002)):
        text += f"""---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: {ns}}}
spec:
  selector: {{app: echo}}
  ports: [{{name: tcp, port: 3000}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: istio
  listeners: [{{name: tcp, protocol: TCP, port: {port}}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: r, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: echo, port: 3000}}]}}]
"""
    return text


def listeners_of(namespace: str, labels: tuple[tuple[str, str], ...] = ((LABEL, "gw"),)) -> dict[str, list[str]]:
    config, problems = load_config_text(two_gateways())
    assert not problems
    proxy = Proxy(
        id=f"router~127.0.0.1~gw-istio.{namespace}~{namespace}.svc.cluster.local", namespace=namespace, labels=labels
    )
    out = translate(config, proxy, TranslateOptions(inline_weights=True))
    return {
        listener.name: [
            f.typed_config.value.decode("latin-1") for chain in listener.filter_chains for f in chain.filters
        ]
        for listener in out.listeners
    }


def test_each_namespace_proxy_gets_its_own_gateway_only() -> None:
    a, b = listeners_of("team-a"), listeners_of("team-b")
    assert list(a) == ["0.0.0.0_9001"]
    assert list(b) == ["0.0.0.0_9002"]
    assert "echo.team-a.svc.cluster.local" in a["0.0.0.0_9001"][0]
    assert "echo.team-b.svc.cluster.local" in b["0.0.0.0_9002"][0]


def test_a_proxy_of_a_third_namespace_or_without_the_label_gets_neither() -> None:
    assert listeners_of("istio-system") == {}
    assert listeners_of("team-a", labels=(("app", "other"),)) == {}


def test_istio_gateways_still_select_across_namespaces() -> None:
    """Only converted Gateways are namespace-scoped: an Istio Gateway's selector matches any namespace's proxy."""
    config, _ = load_config_text("""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: plain, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 9100, name: tcp, protocol: TCP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: plain, namespace: default}
spec:
  hosts: ["*"]
  gateways: [plain]
  tcp: [{route: [{destination: {host: echo.default.svc.cluster.local, port: {number: 3000}}}]}]
""")
    out = translate(config, Proxy.gateway("istio-system"), TranslateOptions())
    assert [listener.name for listener in out.listeners] == ["0.0.0.0_9100"]


def test_offline_dump_takes_the_gateways_namespace_and_asks_when_ambiguous(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(two_gateways())
    base = ["dump", str(path), "--labels", f"{LABEL}=gw", "--type", "listeners", "-o", "json"]
    assert main(base) == 2
    assert "exist in namespaces team-a, team-b: give --proxy-namespace" in capsys.readouterr().err
    assert main([*base, "--proxy-namespace", "team-b"]) == 0
    assert '"0.0.0.0_9002"' in capsys.readouterr().out
    only_a = two_gateways().split("---\napiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: team-b}")[0]
    (tmp_path / "one.yaml").write_text(only_a)
    assert main(["dump", str(tmp_path / "one.yaml"), *base[2:]]) == 0
    assert '"0.0.0.0_9001"' in capsys.readouterr().out
