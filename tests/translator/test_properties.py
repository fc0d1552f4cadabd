"""Properties of the translator over generated configs (hypothesis)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from tcpmesh.model.config import load_config_text
from tcpmesh.translator import EnvoyResources, Proxy, TranslateOptions, translate
from tcpmesh.translator.protos import cluster_pb2, tcp_proxy_pb2
from tests.references import assert_canonical, walked


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[int, list[int]]]:
    """Services each with v1/v2 workloads, a DR with subsets, and a VS on its own gateway port."""
    count = draw(st.integers(1, 4))
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {"port": {"number": 31400 + i, "name": f"tcp-{i}", "protocol": "TCP"}, "hosts": ["*"]}
                    for i in range(count)
                ],
            },
        }
    ]
    weights_by_port: dict[int, list[int]] = {}
    for i in range(count):
        name = f"svc{i}"
        ports = draw(st.lists(st.integers(1000, 9999), min_size=1, max_size=2, unique=True))
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"selector": {"app": name}, "ports": [{"name": f"tcp-{p}", "port": p} for p in ports]},
            }
        )
        for v in ("v1", "v2"):
            docs.append(
                {
                    "apiVersion": "networking.istio.io/v1",
                    "kind": "WorkloadEntry",
                    "metadata": {"name": f"{name}-{v}"},
                    "spec": {
                        "address": f"127.0.{i + 10}.{1 if v == 'v1' else 2}",
                        "labels": {"app": name, "version": v},
                    },
                }
            )
        docs.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": name},
                "spec": {
                    "host": name,
                    "subsets": [
                        {"name": "v1", "labels": {"version": "v1"}},
                        {"name": "v2", "labels": {"version": "v2"}},
                    ],
                },
            }
        )
        n_dest = draw(st.integers(1, 3))
        weights = draw(
            st.lists(st.integers(0, 1000), min_size=n_dest, max_size=n_dest).filter(lambda w: len(w) == 1 or sum(w) > 0)
        )
        weights_by_port[31400 + i] = weights
        route = [
            {"destination": {"host": name, "port": {"number": ports[0]}, "subset": ("v1", "v2", "v1")[j]}, "weight": w}
            for j, w in enumerate(weights)
        ]
        docs.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": name},
                "spec": {"hosts": ["*"], "gateways": ["gw"], "tcp": [{"match": [{"port": 31400 + i}], "route": route}]},
            }
        )
    return docs, weights_by_port


def _translate(docs: list[dict[str, Any]]) -> EnvoyResources:
    config, problems = load_config_text(yaml.safe_dump_all(docs), "generated.yaml")
    assert not [p for p in problems if p.is_error], [str(p) for p in problems]
    assert_canonical(translate(config, Proxy(), TranslateOptions(inline_weights=True)))  # its bytes-built listeners
    out = translate(config, Proxy())
    assert_canonical(out)
    return out


def _bytes(res: EnvoyResources) -> list[bytes]:
    return [m.SerializeToString(deterministic=True) for m in (*res.listeners, *res.clusters, *res.endpoints)]


def _tcp_proxies(res: EnvoyResources) -> dict[int, Any]:
    """The tcp_proxy of each listener port, inline or served by ECDS (every ECDS name must resolve)."""
    discovered = {c.name: c.typed_config for c in res.extension_configs}
    out = {}
    for listener in res.listeners:
        for chain in listener.filter_chains:
            *drain, last = chain.filters
            assert [f.name for f in drain] == ([] if not res.extension_configs else [f"{listener.name}~drain"])
            proxy = tcp_proxy_pb2.TcpProxy()
            typed = discovered[last.name] if last.HasField("config_discovery") else last.typed_config
            assert typed.Unpack(proxy)
            out[listener.address.socket_address.port_value] = proxy
    return out


@given(scenarios())
def test_output_is_deterministic(scenario: tuple[list[dict[str, Any]], dict[int, list[int]]]) -> None:
    docs, _ = scenario
    assert _bytes(_translate(docs)) == _bytes(_translate(docs))


@given(scenarios(), st.randoms(use_true_random=False))
def test_output_is_independent_of_input_order(
    scenario: tuple[list[dict[str, Any]], dict[int, list[int]]], rnd: Any
) -> None:
    docs, _ = scenario
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    assert _bytes(_translate(docs)) == _bytes(_translate(shuffled))


@given(scenarios())
def test_every_referenced_cluster_exists_and_every_eds_cluster_has_endpoints(
    scenario: tuple[list[dict[str, Any]], dict[int, list[int]]],
) -> None:
    res = _translate(scenario[0])
    clusters = {c.name: c for c in res.clusters}
    assignments = {e.cluster_name for e in res.endpoints}
    for proxy in _tcp_proxies(res).values():
        names = [proxy.cluster] if proxy.cluster else [w.name for w in proxy.weighted_clusters.clusters]
        assert names
        assert all(n in clusters for n in names)
    eds = {name for name, c in clusters.items() if c.type == cluster_pb2.Cluster.EDS}
    assert eds == assignments
    assert res.references == walked(res)  # what the translator reports is what the messages name


@given(scenarios())
def test_weights_in_equal_weights_out_minus_zeros(scenario: tuple[list[dict[str, Any]], dict[int, list[int]]]) -> None:
    docs, weights_by_port = scenario
    proxies = _tcp_proxies(_translate(docs))
    assert set(proxies) == set(weights_by_port)
    for port, weights in weights_by_port.items():
        proxy = proxies[port]
        if len(weights) == 1:
            assert proxy.cluster
            assert not proxy.weighted_clusters.clusters
        else:
            assert [w.weight for w in proxy.weighted_clusters.clusters] == [w for w in weights if w > 0]
