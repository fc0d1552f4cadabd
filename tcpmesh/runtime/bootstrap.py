"""Envoy v3 bootstrap documents for proxies that fetch everything over ADS, shaped like Istio's.

The control plane identifies a proxy by what its bootstrap ``node`` says, so the node follows Istio
(``tools/packaging/common/envoy_bootstrap.json`` and ``pilot/pkg/model/context.go`` ``NodeMetadata``):
id ``router~IP~NAME.NS~NS.svc.cluster.local`` (gateway) or ``sidecar~…``, cluster ``<app>.<ns>``, and
metadata with ``LABELS``, ``NAMESPACE``, ``CLUSTER_ID``, ``ISTIO_VERSION`` and friends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from envoy.config.metrics.v3 import metrics_service_pb2

from tcpmesh.runtime.stats_config import stats_config
from tcpmesh.translator.clusters import HTTP_PROTOCOL_OPTIONS
from tcpmesh.translator.protos import http_protocol_options_pb2, tls_pb2, type_url
from tcpmesh.translator.tls import TLS_TRANSPORT_SOCKET

__all__ = [
    "ADS_CLUSTER",
    "DEFAULT_ADMIN_PORT",
    "DEFAULT_ADS_PORT",
    "ISTIO_VERSION",
    "AdsTls",
    "ProxyRole",
    "gateway_bootstrap",
    "istio_node_id",
    "render_bootstrap",
    "sidecar_bootstrap",
]

ProxyRole = Literal["router", "sidecar"]
AdsApiType = Literal["GRPC", "DELTA_GRPC"]

ADS_CLUSTER = "xds-grpc"  # Istio's name for the control-plane cluster
DEFAULT_ADS_PORT = 15010  # istiod's plaintext xDS port
DEFAULT_ADMIN_PORT = 15000  # istio-proxy's admin port
ISTIO_VERSION = "1.24.0"  # the Istio behaviour tcpmesh reproduces; proxies report it like istio-agent does
UPSTREAM_TLS_CONTEXT = type_url(tls_pb2.UpstreamTlsContext)
HTTP_PROTOCOL_OPTIONS_TYPE = type_url(http_protocol_options_pb2.HttpProtocolOptions)
METRICS_SERVICE_CONFIG = type_url(metrics_service_pb2.MetricsServiceConfig)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdsTls:
    """TLS to the control plane: verify it against `ca`, and present `cert`/`key` for mutual TLS."""

    ca: str
    """PEM file of the CA that signed the control plane's certificate."""
    cert: str | None = None
    key: str | None = None
    sni: str = ""

    def transport_socket(self) -> dict[str, Any]:
        common: dict[str, Any] = {
            "alpn_protocols": ["h2"],  # gRPC
            "validation_context": {"trusted_ca": {"filename": self.ca}},
        }
        if self.cert and self.key:
            common["tls_certificates"] = [
                {"certificate_chain": {"filename": self.cert}, "private_key": {"filename": self.key}}
            ]
        context: dict[str, Any] = {"@type": UPSTREAM_TLS_CONTEXT, "common_tls_context": common}
        if self.sni:
            context["sni"] = self.sni
        return {"name": TLS_TRANSPORT_SOCKET, "typed_config": context}


def istio_node_id(role: ProxyRole, ip: str, name: str, namespace: str, *, domain: str = "svc.cluster.local") -> str:
    """Return ``<role>~<ip>~<name>.<namespace>~<namespace>.<domain>`` (Istio ``model.Proxy`` id form)."""
    return f"{role}~{ip}~{name}.{namespace}~{namespace}.{domain}"


def render_bootstrap(
    *,
    node_id: str,
    node_cluster: str,
    labels: Mapping[str, str],
    namespace: str,
    ads_host: str = "127.0.0.1",
    ads_port: int = DEFAULT_ADS_PORT,
    admin_port: int = DEFAULT_ADMIN_PORT,
    ads_api_type: AdsApiType = "GRPC",
    admin_host: str = "127.0.0.1",
    cluster_id: str = "Kubernetes",
    istio_version: str = ISTIO_VERSION,
    metadata: Mapping[str, Any] | None = None,
    ads_retry_base_interval: str = "0.25s",
    ads_retry_max_interval: str = "5s",
    static_listeners: Sequence[Mapping[str, Any]] = (),
    static_clusters: Sequence[Mapping[str, Any]] = (),
    ads_tls: AdsTls | None = None,
    stats_to_control_plane: bool = True,
    stats_flush_interval: str = "1s",
    control_planes: Sequence[tuple[str, int]] = (),
    all_stats: bool = False,
) -> dict[str, Any]:
    """Return a bootstrap whose listeners and clusters all come from one ADS stream (SotW or delta).

    With ``stats_to_control_plane`` Envoy's metrics_service sink streams its counters to the control plane
    over the ADS cluster every ``stats_flush_interval`` (the traffic view: `tcpmesh status --traffic`).
    ``control_planes`` (host, port) replaces ``ads_host``/``ads_port`` with several replicas: the ADS cluster holds
    them all and Envoy's gRPC stream moves to another when its replica goes away (they serve the same versions).
    Envoy keeps only the stats tcpmesh and its checks read (tcpmesh/runtime/stats_config.py); ``all_stats``
    keeps every stat it makes (for debugging: at thousands of clusters that costs memory and a flush each second).

    ``metadata`` is merged over the Istio-style fields (it wins). The ADS retry back-off is shorter than
    Envoy's default (0.5 s doubling to 30 s) so a restarted control plane is found again within seconds.
    ``static_*`` resources are appended after the ``xds-grpc`` cluster (handy for tests; Istio adds its own
    prometheus/agent listeners there).
    """
    node_metadata: dict[str, Any] = {
        "CLUSTER_ID": cluster_id,
        "ISTIO_VERSION": istio_version,
        "LABELS": dict(sorted(labels.items())),
        "NAMESPACE": namespace,
    }
    parts = node_id.split("~")
    if len(parts) == 4:
        # Istio's agent reports the pod's name and IP separately as well as inside the id.
        node_metadata["NAME"] = parts[2].rsplit(".", 1)[0] if "." in parts[2] else parts[2]
        node_metadata["INSTANCE_IPS"] = parts[1]
    node_metadata.update(metadata or {})
    return {
        "node": {
            "id": node_id,
            "cluster": node_cluster,
            "metadata": dict(sorted(node_metadata.items())),
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": ads_api_type,
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [
                    {
                        "envoy_grpc": {
                            "cluster_name": ADS_CLUSTER,
                            "retry_policy": {
                                "retry_back_off": {
                                    "base_interval": ads_retry_base_interval,
                                    "max_interval": ads_retry_max_interval,
                                }
                            },
                        }
                    }
                ],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [
                _ads_cluster(list(control_planes) or [(ads_host, ads_port)], ads_tls),
                *(dict(c) for c in static_clusters),
            ],
            **({"listeners": [dict(lis) for lis in static_listeners]} if static_listeners else {}),
        },
        "admin": {"address": _socket_address(admin_host, admin_port)},
        **({} if all_stats else {"stats_config": stats_config()}),
        **(_stats_sink(stats_flush_interval) if stats_to_control_plane else {}),
    }


def _stats_sink(flush_interval: str) -> dict[str, Any]:
    return {
        "stats_sinks": [
            {
                "name": "envoy.stat_sinks.metrics_service",
                "typed_config": {
                    "@type": METRICS_SERVICE_CONFIG,
                    "transport_api_version": "V3",
                    "grpc_service": {"envoy_grpc": {"cluster_name": ADS_CLUSTER}},
                },
            }
        ],
        "stats_flush_interval": flush_interval,
    }


def gateway_bootstrap(
    *,
    name: str = "istio-ingressgateway",
    namespace: str = "istio-system",
    labels: Mapping[str, str] | None = None,
    ip: str = "127.0.0.1",
    **kwargs: Any,
) -> dict[str, Any]:
    """Bootstrap for an ingress gateway with Istio's default identity (``istio: ingressgateway``).

    Extra keyword arguments go to :func:`render_bootstrap`.
    """
    labels = {"app": name, "istio": "ingressgateway"} if labels is None else labels
    return render_bootstrap(
        node_id=istio_node_id("router", ip, name, namespace),
        node_cluster=f"{labels.get('app', name)}.{namespace}",
        labels=labels,
        namespace=namespace,
        **kwargs,
    )


def sidecar_bootstrap(
    *,
    name: str = "client",
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    ip: str = "127.0.0.1",
    **kwargs: Any,
) -> dict[str, Any]:
    """Bootstrap for a client-side sidecar (``sidecar~…`` id, default labels ``app: sleep``).

    Extra keyword arguments go to :func:`render_bootstrap`.
    """
    labels = {"app": "sleep"} if labels is None else labels
    return render_bootstrap(
        node_id=istio_node_id("sidecar", ip, name, namespace),
        node_cluster=f"{labels.get('app', name)}.{namespace}",
        labels=labels,
        namespace=namespace,
        **kwargs,
    )


def _ads_cluster(replicas: Sequence[tuple[str, int]], tls: AdsTls | None = None) -> dict[str, Any]:
    # STATIC with literal addresses (no DNS, no EDS for the control plane itself); STRICT_DNS for host names.
    literal = all(_is_ip(host) for host, _ in replicas)
    cluster = {
        "name": ADS_CLUSTER,
        "type": "STATIC" if literal else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(h, p)}} for h, p in replicas]}],
        },
        # gRPC needs HTTP/2; this is the non-deprecated way to say so (not cluster.http2_protocol_options).
        "typed_extension_protocol_options": {
            HTTP_PROTOCOL_OPTIONS: {
                "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        # Istio's values: notice a control plane that vanished without a FIN.
                        "connection_keepalive": {"interval": "30s", "timeout": "10s"}
                    }
                },
            }
        },
    }
    if tls is not None:
        cluster["transport_socket"] = tls.transport_socket()
    return cluster


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}
