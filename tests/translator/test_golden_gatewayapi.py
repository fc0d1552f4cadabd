"""Goldens of the Gateway API forms: the internal Istio Gateways and VirtualServices the conversion produces with
every resource's status (``gatewayapi-*-converted``), and the Envoy config of the Gateway's proxy in both serving
modes (``gatewayapi-*`` inline as istiod, ``ecds-gatewayapi-*`` connection-preserving).

Regenerate after an intended change with: UPDATE_GOLDEN=1 .venv/bin/pytest tests/translator/test_golden_gatewayapi.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tcpmesh.model.config import Config, load_config
from tcpmesh.model.gatewayapi.status import status_items
from tcpmesh.model.resources import Gateway, RouteDestination, VirtualService
from tcpmesh.render import dump_yaml, resources_to_dict, static_bootstrap
from tcpmesh.runtime.envoy import validate_config
from tcpmesh.translator import Proxy, TranslateOptions, translate
from tests.references import assert_canonical

from .golden import assert_matches_golden
from .test_golden import CASES as ISTIO_CASES
from .test_golden import INLINE, INPUTS, ROOT, render_case

CASES: dict[str, tuple[list[Path], str, str]] = {
    "tcp-echo-80-20": (
        [ROOT / "samples/gateway-api-tcp-echo", ROOT / "samples/gateway-api-tcp-echo-shift/tcp-echo-20-v2.yaml"],
        "tcp-echo-gateway",
        "default",
    ),
    "drain": (
        [ROOT / "samples/gateway-api-tcp-echo", INPUTS / "gatewayapi-drain.yaml"],
        "tcp-echo-gateway",
        "default",
    ),
    "l4": ([INPUTS / "gatewayapi-l4.yaml"], "l4", "infra"),
    "terminate": ([INPUTS / "gatewayapi-terminate.yaml"], "term", "infra"),
}


def load(paths: list[Path]) -> Config:
    config, problems = load_config(paths)
    errors = [str(p) for p in problems if p.is_error]
    assert not errors, errors
    return config


def proxy(gateway: str, namespace: str) -> Proxy:
    return Proxy(
        id=f"router~127.0.0.1~{gateway}-istio.{namespace}~{namespace}.svc.cluster.local",
        namespace=namespace,
        labels=(("gateway.networking.k8s.io/gateway-name", gateway),),
    )


def render(case: str, options: TranslateOptions) -> str:
    paths, gateway, namespace = CASES[case]
    resources = translate(load(paths), proxy(gateway, namespace), options)
    assert_canonical(resources)
    return dump_yaml(resources_to_dict(resources))


def _route(route: tuple[RouteDestination, ...]) -> list[dict[str, Any]]:
    out = []
    for r in route:
        d = r.destination
        dest: dict[str, Any] = {"host": d.host, **({"subset": d.subset} if d.subset else {})}
        if d.port:
            dest["port"] = {"number": d.port}
        out.append({"destination": dest, **({"weight": r.weight} if r.weight else {})})
    return out


def _gateway(g: Gateway) -> dict[str, Any]:
    servers = []
    for s in g.servers:
        server: dict[str, Any] = {
            "port": {"number": s.port.number, "name": s.port.name, "protocol": s.port.protocol},
            "hosts": list(s.hosts),
        }
        if s.tls is not None:
            tls: dict[str, Any] = {"mode": s.tls.mode}
            if s.tls.credential_name:
                tls["credentialName"] = s.tls.credential_name
            if s.tls.credential_names:
                tls["credentialNames"] = list(s.tls.credential_names)
            server["tls"] = tls
        servers.append(server)
    return {"selector": dict(g.selector), "servers": servers}


def _virtual_service(v: VirtualService) -> dict[str, Any]:
    spec: dict[str, Any] = {"hosts": list(v.hosts), "gateways": list(v.gateways)}
    if v.tcp:
        spec["tcp"] = [{"route": _route(r.route)} for r in v.tcp]
    if v.tls:
        spec["tls"] = [
            {"match": [{"sniHosts": list(m.sni_hosts)} for m in r.match], "route": _route(r.route)} for r in v.tls
        ]
    return spec


def render_conversion(case: str) -> str:
    """The converted Istio resources as Istio YAML, then the statuses (what `get -o yaml` shows)."""
    config = load(CASES[case][0])
    docs: list[dict[str, Any]] = []
    for res in (*config.gateways, *config.virtual_services):
        if not dict(res.meta.annotations).get("internal.istio.io/parents"):
            continue
        spec = _gateway(res) if isinstance(res, Gateway) else _virtual_service(res)
        meta = {"name": res.meta.name, "namespace": res.meta.namespace, "annotations": dict(res.meta.annotations)}
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": res.meta.kind, "metadata": meta, "spec": spec})
    for item in status_items(config.gateway_api()):
        meta = {"name": item["name"], "namespace": item["namespace"]}
        docs.append({"kind": item["kind"], "metadata": meta, "status": item["status"]})
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_conversion_matches_golden(case: str) -> None:
    assert_matches_golden(f"gatewayapi-{case}-converted", render_conversion(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_envoy_config_matches_golden(case: str) -> None:
    assert_matches_golden(f"gatewayapi-{case}", render(case, INLINE))
    assert_matches_golden(f"ecds-gatewayapi-{case}", render(case, TranslateOptions()))


def test_tcp_echo_shift_has_the_istio_api_weights() -> None:
    """The Gateway API tcp-echo shift serves the same weights as the Istio-API one (one Service per version
    instead of one subset per version)."""
    gateway_api = yaml.safe_load(render("tcp-echo-80-20", INLINE))
    istio = yaml.safe_load(render_case(ISTIO_CASES["tcp-echo-80-20"]))

    def weights(doc: dict[str, Any]) -> list[int]:
        (listener,) = doc["listeners"]
        (chain,) = listener["filter_chains"]
        (tcp,) = chain["filters"]
        return [c["weight"] for c in tcp["typed_config"]["weighted_clusters"]["clusters"]]

    assert weights(gateway_api) == weights(istio) == [80, 20]


@pytest.mark.envoy
@pytest.mark.parametrize("case", ["drain", "l4", "tcp-echo-80-20"])
def test_real_envoy_accepts_the_gateway_api_config(case: str) -> None:
    paths, gateway, namespace = CASES[case]
    resources = translate(load(paths), proxy(gateway, namespace), TranslateOptions())
    ok, output = validate_config(static_bootstrap(resources))
    assert ok, output[-3000:]
