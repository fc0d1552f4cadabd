"""The floor: the synthetic mesh's exact output messages built directly from loop indices, no model or index.

Same messages, same content, same (deterministic) bytes as the translator's output for ``synth.MeshSpec``; the
scale benchmark checks the bytes are equal, so the ratio translator/floor is the cost of the model and index.
Written the plain way (constructors with keyword arguments), as minimal hand-written code would be.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import any_pb2, duration_pb2, struct_pb2, wrappers_pb2
from synth import NAMESPACE, MeshSpec

__all__ = ["build_floor"]

_C = cluster_pb2.Cluster
_MAX = 4294967295
_V = struct_pb2.Value


def _addr(address: str, port: int) -> Any:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def _cluster(name: str, svc: str, host: str, subset: str) -> Any:
    istio = struct_pb2.Struct()
    istio.update(
        {
            "services": [{"host": host, "name": svc, "namespace": NAMESPACE}],
            "config": f"/apis/networking.istio.io/v1/namespaces/{NAMESPACE}/destination-rule/{svc}",
        }
    )
    if subset:
        istio.fields["subset"].string_value = subset
    return _C(
        name=name,
        type=_C.EDS,
        eds_cluster_config=_C.EdsClusterConfig(
            service_name=name,
            eds_config=config_source_pb2.ConfigSource(
                ads=config_source_pb2.AggregatedConfigSource(),
                initial_fetch_timeout=duration_pb2.Duration(),
                resource_api_version=config_source_pb2.V3,
            ),
        ),
        connect_timeout=duration_pb2.Duration(seconds=10),
        lb_policy=_C.LEAST_REQUEST,
        circuit_breakers=circuit_breaker_pb2.CircuitBreakers(
            thresholds=[
                circuit_breaker_pb2.CircuitBreakers.Thresholds(
                    max_connections=wrappers_pb2.UInt32Value(value=_MAX),
                    max_pending_requests=wrappers_pb2.UInt32Value(value=_MAX),
                    max_requests=wrappers_pb2.UInt32Value(value=_MAX),
                    max_retries=wrappers_pb2.UInt32Value(value=_MAX),
                )
            ]
        ),
        common_lb_config=_C.CommonLbConfig(),
        alt_stat_name=name + ";",
        metadata=base_pb2.Metadata(filter_metadata={"istio": istio}),
    )


def _lb_endpoint(address: str, port: int, svc: str, version: str) -> Any:
    meta = struct_pb2.Struct()
    meta.fields["workload"].string_value = f"{svc}-{version};{NAMESPACE};{svc};{version};Kubernetes"
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=_addr(address, port)),
        health_status=health_check_pb2.HEALTHY,
        load_balancing_weight=wrappers_pb2.UInt32Value(value=1),
        metadata=base_pb2.Metadata(filter_metadata={"istio": meta}),
    )


def _cla(name: str, endpoints: list[Any]) -> Any:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=endpoints, load_balancing_weight=wrappers_pb2.UInt32Value(value=len(endpoints))
            )
        ],
    )


def _listener(port: int, svc: str, v1: str, v2: str, w1: int, w2: int) -> Any:
    tcp = tcp_proxy_pb2.TcpProxy(stat_prefix=f"{svc}.{NAMESPACE}")
    tcp.weighted_clusters.clusters.add(name=v1, weight=w1)
    tcp.weighted_clusters.clusters.add(name=v2, weight=w2)
    typed = any_pb2.Any()
    typed.Pack(tcp)
    return listener_pb2.Listener(
        name=f"0.0.0.0_{port}",
        address=_addr("0.0.0.0", port),
        traffic_direction=base_pb2.OUTBOUND,
        max_connections_to_accept_per_socket_event=wrappers_pb2.UInt32Value(value=1),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy", typed_config=typed)],
                transport_socket_connect_timeout=duration_pb2.Duration(seconds=15),
            )
        ],
    )


def build_floor(spec: MeshSpec) -> tuple[list[Any], list[Any], list[Any]]:
    """(listeners, clusters, endpoints) in the translator's order (sorted by name)."""
    listeners: list[Any] = []
    clusters: list[Any] = [
        _C(name="BlackHoleCluster", type=_C.STATIC, connect_timeout=duration_pb2.Duration(seconds=10))
    ]
    endpoints: list[Any] = []
    for i in range(spec.services):
        svc = f"svc-{i}"
        host = f"{svc}.{NAMESPACE}.svc.cluster.local"
        names = [f"outbound|9000|{subset}|{host}" for subset in ("", "v1", "v2")]
        listeners.append(_listener(spec.port(i), svc, names[1], names[2], 80, 20))
        for name, subset in zip(names, ("", "v1", "v2"), strict=True):
            clusters.append(_cluster(name, svc, host, subset))
        e1 = (spec.address(i, 1), spec.v1_port, "v1")
        e2 = (spec.address(i, 2), spec.v2_port, "v2")
        both = sorted([e1, e2])
        endpoints.append(_cla(names[0], [_lb_endpoint(a, p, svc, v) for a, p, v in both]))
        endpoints.append(_cla(names[1], [_lb_endpoint(*e1[:2], svc, "v1")]))
        endpoints.append(_cla(names[2], [_lb_endpoint(*e2[:2], svc, "v2")]))
    listeners.sort(key=lambda r: r.name)
    clusters.sort(key=lambda r: r.name)
    endpoints.sort(key=lambda r: r.cluster_name)
    return listeners, clusters, endpoints
