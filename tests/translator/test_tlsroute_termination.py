"""TLSRoute termination (istiod's gateway.go buildGatewayNetworkFiltersFromTCPRoutes): a VirtualService converted
from a TLSRoute (``internal.istio.io/parents: TLSRoute/...``) has only tls: blocks; on a server that terminates TLS
they route like tcp:. Other VirtualServices' tls: blocks do not."""

from __future__ import annotations

from typing import Any

from tcpmesh.model.config import load_config_text
from tcpmesh.render import resources_to_dict
from tcpmesh.translator import Proxy, TranslateOptions, translate

TEXT = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: term, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8443, name: tls, protocol: TLS}}
    hosts: ["*"]
    tls: {{mode: SIMPLE, serverCertificate: /etc/certs/server.pem, privateKey: /etc/certs/key.pem}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: from-tlsroute
  namespace: default
  annotations: {{internal.istio.io/parents: {parents}}}
spec:
  hosts: [a.example.com]
  gateways: [term]
  tls:
  - match: [{{sniHosts: [a.example.com]}}]
    route: [{{destination: {{host: v1, port: {{number: 3000}}}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: v1, namespace: default}}
spec:
  ports: [{{name: tcp, port: 3000}}]
"""


def listeners(parents: str) -> list[dict[str, Any]]:
    config, problems = load_config_text(TEXT.format(parents=parents))
    assert not [p for p in problems if p.is_error], [str(p) for p in problems]
    out = resources_to_dict(translate(config, Proxy(), TranslateOptions(inline_weights=True)))
    return list(out["listeners"])


def test_tlsroute_virtual_service_routes_on_a_terminating_server() -> None:
    (listener,) = listeners("TLSRoute/r.default")
    (chain,) = listener["filter_chains"]
    assert "transport_socket" in chain  # TLS terminated by Envoy
    (tcp,) = chain["filters"]
    assert tcp["typed_config"]["cluster"] == "outbound|3000||v1.default.svc.cluster.local"


def test_other_tls_blocks_do_not_route_on_a_terminating_server() -> None:
    assert listeners("TCPRoute/r.default") == []
