"""Same-named Gateway API Gateways in two namespaces through `up`'s Envoys: one Envoy each, each serving its own
Gateway's listener and routes only, each Gateway Programmed by its own proxy."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from tcpmesh.runtime.polling import wait_until

from .conftest import Mesh
from .test_gatewayapi_e2e import echo, first_reply, get_object, gmesh, start
from .traffic import assert_split, replies

__all__ = ["gmesh"]

LABEL = "gateway.networking.k8s.io/gateway-name"


def namespaced(ns: str, port: int) -> str:
    return (
        echo(f"echo-{ns}", ns)
        + f"""---
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
  rules: [{{backendRefs: [{{name: echo-{ns}, port: 3000}}]}}]
"""
    )


def test_same_named_gateways_in_two_namespaces_get_an_envoy_each(gmesh: Mesh, tmp_path: Path) -> None:
    pa, pb = gmesh.port(31400), gmesh.port(31401)
    start(gmesh, tmp_path, namespaced("team-a", pa) + namespaced("team-b", pb))
    a, b = gmesh.gateway_envoys[("team-a", "gw")], gmesh.gateway_envoys[("team-b", "gw")]
    assert a is not b
    assert a.work_dir != b.work_dir
    a.wait_for_listener(f"0.0.0.0_{pa}")
    b.wait_for_listener(f"0.0.0.0_{pb}")
    assert set(a.listeners()) == {f"0.0.0.0_{pa}"}  # not team-b's listener
    assert set(b.listeners()) == {f"0.0.0.0_{pb}"}
    assert first_reply(pa) == "echo-team-a hello"
    assert first_reply(pb) == "echo-team-b hello"
    assert_split(replies(pa, 50), {"echo-team-a hello": 1.0})
    assert_split(replies(pb, 50), {"echo-team-b hello": 1.0})

    def programmed(ns: str) -> dict[str, Any] | None:
        conditions = get_object(gmesh, "gtw", "gw", ns)["status"]["conditions"]
        return next((c for c in conditions if c["type"] == "Programmed" and c["status"] == "True"), None)

    for ns in ("team-a", "team-b"):
        condition = wait_until(functools.partial(programmed, ns), timeout=15, what=f"{ns}/gw Programmed")
        assert condition["message"] == "Resource programmed, served to 1 connected proxy"  # its own, not both
