"""DestinationRule specs (subsets, traffic policy) → typed values."""

from __future__ import annotations

from typing import TypedDict

from tcpmesh.model.problems import Severity
from tcpmesh.model.reader import Reader
from tcpmesh.model.resources import (
    ClientTLS,
    ConnectionPool,
    ConsistentHash,
    DestinationRule,
    HTTP2Keepalive,
    HTTPSettings,
    LoadBalancer,
    LocalityLbSetting,
    Meta,
    OutlierDetection,
    PortTrafficPolicy,
    RetryBudget,
    Subset,
    TCPKeepalive,
    TCPSettings,
    TrafficPolicy,
    Warmup,
)

__all__ = ["parse_destination_rule"]

_TLS_CLIENT_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
_LB_SIMPLE = ("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST")


# --- DestinationRule ----------------------------------------------------------------------------


def _connection_pool(r: Reader) -> ConnectionPool:
    tcp = None
    tcp_r = r.obj("tcp")
    if tcp_r is not None:
        keepalive = None
        ka_r = tcp_r.obj("tcpKeepalive")
        if ka_r is not None:
            keepalive = TCPKeepalive(
                probes=ka_r.integer("probes", proto="uint32"),
                time_ms=ka_r.duration_ms("time"),
                interval_ms=ka_r.duration_ms("interval"),
            )
            ka_r.finish()
        tcp = TCPSettings(
            max_connections=tcp_r.integer("maxConnections"),
            connect_timeout_ms=tcp_r.duration_ms("connectTimeout"),
            tcp_keepalive=keepalive,
            max_connection_duration_ms=tcp_r.duration_ms("maxConnectionDuration"),
            idle_timeout_ms=tcp_r.duration_ms("idleTimeout", allow_zero=True),
        )
        tcp_r.finish()
    http = None
    http_r = r.obj("http")
    if http_r is not None:
        h2_keepalive = None
        h2_r = http_r.obj("http2KeepAlive")
        if h2_r is not None:
            h2_keepalive = HTTP2Keepalive(
                interval_ms=h2_r.duration_ms("interval"), timeout_ms=h2_r.duration_ms("timeout")
            )
            h2_r.finish()
        http = HTTPSettings(
            http1_max_pending_requests=http_r.integer("http1MaxPendingRequests"),
            http2_max_requests=http_r.integer("http2MaxRequests"),
            max_requests_per_connection=http_r.integer("maxRequestsPerConnection"),
            max_retries=http_r.integer("maxRetries"),
            idle_timeout_ms=http_r.duration_ms("idleTimeout"),
            h2_upgrade_policy=http_r.enum("h2UpgradePolicy", ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")),
            use_client_protocol=http_r.boolean("useClientProtocol"),
            max_concurrent_streams=http_r.integer("maxConcurrentStreams"),
            http2_keepalive=h2_keepalive,
        )
        http_r.finish()
    pool = ConnectionPool(tcp=tcp, http=http)
    r.finish()
    return pool


def _locality(r: Reader) -> LocalityLbSetting:
    distribute: list[tuple[str, tuple[tuple[str, int], ...]]] = []
    for _, d in r.objects("distribute"):
        if d is not None:
            distribute.append((d.string("from"), d.int_map("to")))
            d.finish()
    failover: list[tuple[str, str]] = []
    for _, f in r.objects("failover"):
        if f is not None:
            failover.append((f.string("from"), f.string("to")))
            f.finish()
    setting = LocalityLbSetting(
        enabled=r.opt_boolean("enabled"),
        distribute=tuple(distribute),
        failover=tuple(failover),
        failover_priority=r.str_list("failoverPriority"),
    )
    r.finish()
    return setting


def _number(r: Reader, key: str) -> float | None:
    """A protobuf DoubleValue: YAML integers and floats both."""
    if not r.has(key):
        return None
    value = r.data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        r.report(key, f"expected number, got {type(value).__name__}")
        return None
    return float(value)


def _load_balancer(r: Reader) -> LoadBalancer:
    ch = None
    ch_r = r.obj("consistentHash")
    if ch_r is not None:
        other = next((k for k in ("httpHeaderName", "httpCookie", "httpQueryParameterName") if ch_r.has(k)), "")
        cookie_name = None
        cookie = ch_r.obj("httpCookie")
        if cookie is not None:
            cookie_name = cookie.string("name")
            cookie.duration_ms("ttl", allow_zero=True)
            cookie.string("path")
            cookie.ignore("attributes")
            cookie.finish()
        ring = ch_r.obj("ringHash")
        ring_size = None
        if ring is not None:
            ring_size = ring.integer("minimumRingSize", proto="uint64")
            ring.finish()
        maglev = ch_r.obj("maglev")
        table = None
        if maglev is not None:
            table = maglev.integer("tableSize", proto="uint64")
            maglev.finish()
        ch = ConsistentHash(
            use_source_ip=ch_r.boolean("useSourceIp"),
            other_key=other,
            minimum_ring_size=ch_r.integer("minimumRingSize", proto="uint64"),
            ring_hash_minimum_ring_size=ring_size,
            maglev_table_size=table,
            http_cookie_name=cookie_name,
        )
        ch_r.finish()
    warmup = None
    if r.has("warmupDurationSecs"):
        warmup = r.duration_ms("warmupDurationSecs")
    warm = None
    wr = r.obj("warmup")
    if wr is not None:
        warmup = wr.duration_ms("duration")
        warm = Warmup(
            duration_ms=warmup, minimum_percent=_number(wr, "minimumPercent"), aggression=_number(wr, "aggression")
        )
        wr.finish()
    loc = r.obj("localityLbSetting")
    lb = LoadBalancer(
        simple=r.enum("simple", _LB_SIMPLE),
        consistent_hash=ch,
        locality=_locality(loc) if loc is not None else None,
        warmup_duration_ms=warmup,
        warmup=warm,
    )
    r.finish()
    return lb


def _status_codes(r: Reader, key: str) -> tuple[int, ...]:
    """outlierDetectionHttpErrorCodes: uint32 items, 100..599 by the CRD schema (the API server's messages)."""
    if not r.has(key):
        return ()
    value = r.data[key]
    if not isinstance(value, list):
        r.report(key, f"expected array of integers, got {type(value).__name__}")
        return ()
    codes: list[int] = []
    for i, item in enumerate(value):
        at = f"{r.sub(key)}[{i}]"
        if isinstance(item, bool) or not isinstance(item, int):
            r.ctx.report(at, r.line(key), f"expected integer, got {type(item).__name__}")
        elif not 100 <= item <= 599:
            bound = "greater than or equal to 100" if item < 100 else "less than or equal to 599"
            r.ctx.report(at, r.line(key), f"Invalid value: {item}: {at} in body should be {bound}")
        else:
            codes.append(item)
    return tuple(codes)


def _outlier(r: Reader) -> OutlierDetection:
    od = OutlierDetection(
        consecutive_5xx_errors=r.opt_integer("consecutive5xxErrors", proto="uint32"),
        consecutive_gateway_errors=r.opt_integer("consecutiveGatewayErrors", proto="uint32"),
        consecutive_local_origin_failures=r.opt_integer("consecutiveLocalOriginFailures", proto="uint32"),
        split_external_local_origin_errors=r.boolean("splitExternalLocalOriginErrors"),
        interval_ms=r.duration_ms("interval"),
        base_ejection_time_ms=r.duration_ms("baseEjectionTime"),
        max_ejection_percent=r.integer("maxEjectionPercent"),
        min_health_percent=r.integer("minHealthPercent"),
        http_error_codes=_status_codes(r, "outlierDetectionHttpErrorCodes"),
    )
    if r.has("consecutiveErrors"):
        r.report(
            "consecutiveErrors",
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or "
            "consecutive5xxErrors instead",
            Severity.WARNING,
        )
    r.finish()
    return od


def _retry_budget(r: Reader) -> RetryBudget:
    """retryBudget; percent's 0..100 is the CRD schema's (the API server's message). The Envoy tcpmesh serves has
    no budget interval, so budgetInterval is read and left out, with a warning."""
    percent = _number(r, "percent")
    if percent is not None and not 0 <= percent <= 100:
        bound = "greater than or equal to 0" if percent < 0 else "less than or equal to 100"
        r.report("percent", f"Invalid value: {percent:g}: {r.sub('percent')} in body should be {bound}")
        percent = None
    budget = RetryBudget(
        percent=percent,
        min_retry_concurrency=r.integer("minRetryConcurrency", proto="uint32"),
        budget_interval_ms=r.duration_ms("budgetInterval"),
    )
    if budget.budget_interval_ms is not None:
        r.report("budgetInterval", "not supported by the Envoy tcpmesh serves (1.40); ignored", Severity.WARNING)
    r.finish()
    return budget


def _client_tls(r: Reader) -> ClientTLS:
    tls = ClientTLS(
        mode=r.enum("mode", _TLS_CLIENT_MODES, "DISABLE"),
        client_certificate=r.string("clientCertificate"),
        private_key=r.string("privateKey"),
        ca_certificates=r.string("caCertificates"),
        ca_crl=r.string("caCrl"),
        credential_name=r.string("credentialName"),
        subject_alt_names=r.str_list("subjectAltNames"),
        sni=r.string("sni"),
        insecure_skip_verify=r.opt_boolean("insecureSkipVerify"),
    )
    r.finish()
    return tls


class _PolicyBlocks(TypedDict):
    connection_pool: ConnectionPool | None
    load_balancer: LoadBalancer | None
    outlier_detection: OutlierDetection | None
    tls: ClientTLS | None


def _policy_blocks(r: Reader) -> _PolicyBlocks:
    cp = r.obj("connectionPool")
    lb = r.obj("loadBalancer")
    od = r.obj("outlierDetection")
    tls = r.obj("tls")
    return {
        "connection_pool": _connection_pool(cp) if cp else None,
        "load_balancer": _load_balancer(lb) if lb else None,
        "outlier_detection": _outlier(od) if od else None,
        "tls": _client_tls(tls) if tls else None,
    }


def _traffic_policy(r: Reader) -> TrafficPolicy:
    blocks = _policy_blocks(r)
    ports: list[PortTrafficPolicy] = []
    for _, p in r.objects("portLevelSettings"):
        if p is None:
            r.report("portLevelSettings", "traffic policy may not be null")
            continue
        port_r = p.obj("port")
        number = 0
        if port_r is not None:
            number = port_r.integer("number", proto="uint32")
            port_r.finish()
        ports.append(PortTrafficPolicy(port=number, **_policy_blocks(p)))
        p.finish()
    proxy_protocol = ""
    pp = r.obj("proxyProtocol")
    if pp is not None:
        proxy_protocol = pp.enum("version", ("V1", "V2"), "V1")
        pp.finish()
    has_tunnel = r.has("tunnel")
    tunnel_protocol, tunnel_host, tunnel_port = "", "", 0
    tunnel_r = r.obj("tunnel")
    if tunnel_r is not None:
        tunnel_protocol = tunnel_r.string("protocol")
        tunnel_host = tunnel_r.string("targetHost")
        tunnel_port = tunnel_r.integer("targetPort", proto="uint32")
        tunnel_r.finish()
    retry_budget = None
    rb = r.obj("retryBudget")
    if rb is not None:
        retry_budget = _retry_budget(rb)
    policy = TrafficPolicy(
        port_level_settings=tuple(ports),
        proxy_protocol_version=proxy_protocol,
        has_tunnel=has_tunnel,
        tunnel_protocol=tunnel_protocol,
        tunnel_target_host=tunnel_host,
        tunnel_target_port=tunnel_port,
        retry_budget=retry_budget,
        **blocks,
    )
    r.finish()
    return policy


def parse_destination_rule(r: Reader, meta: Meta) -> DestinationRule:
    tp = r.obj("trafficPolicy")
    subsets: list[Subset] = []
    for _, s in r.objects("subsets"):
        if s is None:
            r.report("subsets", "subset may not be null")
            continue
        stp = s.obj("trafficPolicy")
        subsets.append(
            Subset(
                name=s.string("name"),
                labels=s.labels("labels") or (),
                traffic_policy=_traffic_policy(stp) if stp else None,
            )
        )
        s.finish()
    ws = None
    ws_r = r.obj("workloadSelector")
    if ws_r is not None:
        ws = ws_r.labels("matchLabels") or ()
        ws_r.finish()
    return DestinationRule(
        meta=meta,
        host=r.string("host"),
        traffic_policy=_traffic_policy(tp) if tp else None,
        subsets=tuple(subsets),
        export_to=r.str_list("exportTo"),
        workload_selector=ws,
    )
