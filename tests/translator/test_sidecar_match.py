"""The static L4 predicates a sidecar resolves per proxy (pilot tls.go matchTCP / matchTLS), table-driven,
and the service addresses its listeners bind."""

from __future__ import annotations

import pytest

from tcpmesh.model.resources import L4Match, TLSMatch
from tcpmesh.translator.mesh_match import sidecar_match
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.service_addresses import service_addresses
from tcpmesh.translator.services import MeshService, SvcPort

SLEEP = Proxy(role="sidecar", id="sidecar~127.0.0.1~client.default~default.svc.cluster.local", namespace="default",
              labels=(("app", "sleep"), ("version", "v1")))  # fmt: skip

CASES: list[tuple[str, L4Match, int, bool]] = [
    ("no predicates", L4Match(), 9000, True),
    ("port equal", L4Match(port=9000), 9000, True),
    ("port differs", L4Match(port=9001), 9000, False),
    ("gateways mesh", L4Match(gateways=("mesh",)), 9000, True),
    ("gateways mesh among others", L4Match(gateways=("istio-system/gw", "mesh")), 9000, True),
    ("gateways without mesh", L4Match(gateways=("istio-system/gw",)), 9000, False),
    ("sourceLabels subset", L4Match(source_labels=(("app", "sleep"),)), 9000, True),
    ("sourceLabels all", L4Match(source_labels=(("app", "sleep"), ("version", "v1"))), 9000, True),
    ("sourceLabels value differs", L4Match(source_labels=(("app", "curl"),)), 9000, False),
    ("sourceLabels key missing", L4Match(source_labels=(("tier", "front"),)), 9000, False),
    ("sourceNamespace equal", L4Match(source_namespace="default"), 9000, True),
    ("sourceNamespace differs", L4Match(source_namespace="test"), 9000, False),
    ("destinationSubnets are runtime, not static", L4Match(destination_subnets=("10.0.0.0/8",)), 9000, True),
    (
        "all hold",
        L4Match(port=9000, gateways=("mesh",), source_labels=(("app", "sleep"),), source_namespace="default"),
        9000,
        True,
    ),
    (
        "one fails",
        L4Match(port=9000, gateways=("mesh",), source_labels=(("app", "sleep"),), source_namespace="x"),
        9000,
        False,
    ),
]


@pytest.mark.parametrize(("match", "port", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_l4_match(match: L4Match, port: int, expected: bool) -> None:
    assert sidecar_match(match, SLEEP, port) is expected


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        (TLSMatch(sni_hosts=("a.example",)), True),
        (TLSMatch(sni_hosts=("a.example",), source_labels=(("app", "curl"),)), False),
        (TLSMatch(sni_hosts=("a.example",), port=8443, source_namespace="default"), True),
        (TLSMatch(sni_hosts=("a.example",), gateways=("default/gw",)), False),
    ],
)
def test_tls_match_uses_the_same_predicates(match: TLSMatch, expected: bool) -> None:
    assert sidecar_match(match, SLEEP, 8443) is expected


def _svc(hostname: str, *addresses: str, namespace: str = "default") -> MeshService:
    return MeshService(
        hostname=hostname, name=hostname.split(".")[0], namespace=namespace, ports=(SvcPort(number=9000),),
        kind="Service", addresses=addresses,
    )  # fmt: skip


def test_service_addresses_keep_vips_and_assign_the_rest_by_hostname() -> None:
    services = [
        _svc("zeta.default.svc.cluster.local"),
        _svc("alpha.default.svc.cluster.local"),
        _svc("fixed.default.svc.cluster.local", "10.96.0.7"),
        _svc("host.example", "192.168.1.5/32"),
        _svc("range.example", "10.20.0.0/16"),
        _svc("alpha.default.svc.cluster.local", "10.0.0.1", namespace="other"),  # later duplicate hostname
    ]
    assert service_addresses(services, "127.200.0.0") == {
        "alpha.default.svc.cluster.local": "127.200.0.1",
        "fixed.default.svc.cluster.local": "10.96.0.7",
        "host.example": "192.168.1.5",
        "range.example": "10.20.0.0/16",
        "zeta.default.svc.cluster.local": "127.200.0.2",
    }


def test_service_addresses_are_a_pure_function_of_the_services() -> None:
    services = [_svc(f"s{i}.default.svc.cluster.local") for i in range(5)]
    assert service_addresses(services) == service_addresses(list(reversed(services)))
