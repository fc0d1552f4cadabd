"""YAML documents → typed resources. Shape errors (types, unknown fields, bad durations) are reported here;
semantic rules live in :mod:`tcpmesh.model.validate`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from tcpmesh.model.problems import Problem, Severity
from tcpmesh.model.reader import Context, Reader
from tcpmesh.model.resources import (
    ClientTLS,
    ConnectionPool,
    ConsistentHash,
    Container,
    Deployment,
    Destination,
    DestinationRule,
    Gateway,
    L4Match,
    LoadBalancer,
    Meta,
    OutlierDetection,
    PortTrafficPolicy,
    Resource,
    RouteDestination,
    Server,
    ServerPort,
    ServerTLS,
    Service,
    ServiceEntry,
    ServiceEntryPort,
    ServicePort,
    Source,
    Subset,
    TCPKeepalive,
    TCPRoute,
    TCPSettings,
    TLSMatch,
    TLSRoute,
    TrafficPolicy,
    VirtualService,
    WorkloadEntry,
    WorkloadSpec,
)
from tcpmesh.model.yamlsource import Document, LocatedDict

__all__ = ["ISTIO_API_VERSIONS", "parse_document"]

ISTIO_API_VERSIONS = ("networking.istio.io/v1alpha3", "networking.istio.io/v1beta1", "networking.istio.io/v1")
_KUBE_API_VERSIONS = {
    "Service": ("v1",),
    "Deployment": ("apps/v1", "apps/v1beta1", "apps/v1beta2", "extensions/v1beta1"),
}
_ISTIO_KINDS = ("Gateway", "VirtualService", "DestinationRule", "ServiceEntry", "WorkloadEntry")
# Kinds people keep in the same files (Istio samples ship ServiceAccounts beside Deployments).
_IGNORED_KINDS = ("Namespace", "ServiceAccount", "ConfigMap", "Secret", "Sidecar", "PeerAuthentication")

_TLS_SERVER_MODES = ("PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL")
_TLS_CLIENT_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
_LB_SIMPLE = ("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST")
_TLS_VERSIONS = ("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")


def parse_document(
    doc: Document, order: int, default_namespace: str = "default"
) -> tuple[list[Resource], list[Problem]]:
    """Parse one YAML document (a resource, or a ``kind: List`` of them)."""
    ctx = Context(file=doc.file)
    data = doc.data
    if not isinstance(data, LocatedDict):
        ctx.report("", doc.line, "a resource must be a mapping with apiVersion, kind, metadata and spec")
        return [], ctx.problems
    if data.get("kind") == "List" and isinstance(data.get("items"), list):
        out: list[Resource] = []
        problems: list[Problem] = []
        for i, item in enumerate(data["items"]):
            res, probs = parse_document(
                Document(doc.file, doc.index, data["items"].line_of(i), item), order + i, default_namespace
            )
            out.extend(res)
            problems.extend(probs)
        return out, problems
    resource = _parse_resource(ctx, data, order, default_namespace)
    return ([resource] if resource is not None else []), ctx.problems


def _parse_resource(ctx: Context, data: LocatedDict, order: int, default_namespace: str) -> Resource | None:
    top = Reader(ctx, data, "")
    kind = top.string("kind")
    api_version = top.string("apiVersion")
    meta_reader = top.obj("metadata")
    name = meta_reader.string("name") if meta_reader else ""
    namespace = (meta_reader.string("namespace") if meta_reader else "") or default_namespace
    ctx.kind, ctx.namespace, ctx.name = kind, namespace, name
    if not kind:
        top.report("kind", "required field is missing")
        return None
    if kind in _IGNORED_KINDS:
        ctx.report("kind", data.line_of("kind"), f"kind {kind} is not used by tcpmesh; ignored", Severity.WARNING)
        return None
    if kind in _ISTIO_KINDS:
        allowed: tuple[str, ...] = ISTIO_API_VERSIONS
    elif kind in _KUBE_API_VERSIONS:
        allowed = _KUBE_API_VERSIONS[kind]
    else:
        top.report("kind", f"unsupported kind {kind!r}")
        return None
    if api_version not in allowed:
        top.report(
            "apiVersion",
            f"unsupported apiVersion {api_version!r} for {kind}; expected one of {', '.join(allowed)}",
        )
        return None
    if meta_reader is None:
        top.report("metadata", "required field is missing")
        return None
    if not name:
        meta_reader.report("name", "required field is missing")
    labels = meta_reader.labels("labels") or ()
    annotations = meta_reader.labels("annotations") or ()
    meta_reader.ignore(
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "ownerReferences",
        "finalizers",
        "generateName",
        "selfLink",
        "deletionTimestamp",
    )
    meta_reader.finish()
    meta = Meta(
        kind=kind,
        api_version=api_version,
        name=name,
        namespace=namespace,
        labels=labels,
        annotations=annotations,
        source=Source(ctx.file, data.line),
        order=order,
        field_lines=ctx.lines,
    )
    spec = top.obj("spec")
    top.ignore("status")
    top.finish()
    if spec is None:
        if kind in ("Service", "Deployment") or not top.has("spec"):
            top.report("spec", "required field is missing")
        return None
    parser = _PARSERS[kind]
    resource = parser(spec, meta)
    spec.finish()
    return resource


# --- Gateway ------------------------------------------------------------------------------------


def _gateway(r: Reader, meta: Meta) -> Gateway:
    servers: list[Server] = []
    for _, s in r.objects("servers"):
        if s is None:
            r.report("servers", "server may not be nil")
            continue
        port_r = s.obj("port")
        port = ServerPort(number=0, name="", protocol="")
        if port_r is not None:
            port = ServerPort(
                number=port_r.integer("number"),
                name=port_r.string("name"),
                protocol=port_r.string("protocol"),
                target_port=port_r.integer("targetPort"),
            )
            port_r.finish()
        tls_r = s.obj("tls")
        tls = _server_tls(tls_r) if tls_r is not None else None
        servers.append(
            Server(
                port=port,
                hosts=s.str_list("hosts"),
                bind=s.string("bind"),
                tls=tls,
                name=s.string("name"),
                default_endpoint=s.string("defaultEndpoint"),
            )
        )
        if not s.has("port"):
            s.report(None, "port is required")
        s.finish()
    return Gateway(meta=meta, selector=r.labels("selector") or (), servers=tuple(servers))


def _server_tls(r: Reader) -> ServerTLS:
    certs = 0
    pairs: list[tuple[str, str]] = []
    for _, c in r.objects("tlsCertificates"):
        certs += 1
        if c is not None:
            pairs.append((c.string("serverCertificate"), c.string("privateKey")))
            c.string("caCertificates")
            c.finish()
    tls = ServerTLS(
        mode=r.enum("mode", _TLS_SERVER_MODES, "PASSTHROUGH"),
        server_certificate=r.string("serverCertificate"),
        private_key=r.string("privateKey"),
        ca_certificates=r.string("caCertificates"),
        ca_crl=r.string("caCrl"),
        credential_name=r.string("credentialName"),
        credential_names=r.str_list("credentialNames"),
        tls_certificate_count=certs,
        tls_certificates=tuple(pairs),
        subject_alt_names=r.str_list("subjectAltNames"),
        verify_certificate_spki=r.str_list("verifyCertificateSpki"),
        verify_certificate_hash=r.str_list("verifyCertificateHash"),
        min_protocol_version=r.enum("minProtocolVersion", _TLS_VERSIONS),
        max_protocol_version=r.enum("maxProtocolVersion", _TLS_VERSIONS),
        cipher_suites=r.str_list("cipherSuites"),
        https_redirect=r.boolean("httpsRedirect"),
    )
    r.ignore("ecdhCurves")
    r.finish()
    return tls


# --- VirtualService -----------------------------------------------------------------------------


def _route_destinations(r: Reader) -> tuple[RouteDestination, ...]:
    out: list[RouteDestination] = []
    for _, d in r.objects("route"):
        if d is None:
            r.report("route", "destination is required")
            continue
        dest_r = d.obj("destination")
        dest = Destination(host="")
        if dest_r is None:
            d.report(None, "destination is required")
        else:
            port = 0
            port_r = dest_r.obj("port")
            if port_r is not None:
                port = port_r.integer("number")
                port_r.finish()
            dest = Destination(host=dest_r.string("host"), subset=dest_r.string("subset"), port=port)
            dest_r.finish()
        out.append(RouteDestination(destination=dest, weight=d.integer("weight")))
        d.finish()
    return tuple(out)


class _L4Fields(TypedDict):
    destination_subnets: tuple[str, ...]
    port: int
    source_labels: tuple[tuple[str, str], ...]
    gateways: tuple[str, ...]
    source_namespace: str


def _l4_match_fields(m: Reader) -> _L4Fields:
    return {
        "destination_subnets": m.str_list("destinationSubnets"),
        "port": m.integer("port"),
        "source_labels": m.labels("sourceLabels") or (),
        "gateways": m.str_list("gateways"),
        "source_namespace": m.string("sourceNamespace"),
    }


def _virtual_service(r: Reader, meta: Meta) -> VirtualService:
    tcp: list[TCPRoute] = []
    for _, t in r.objects("tcp"):
        if t is None:
            r.report("tcp", "tcp route may not be null")
            continue
        matches: list[L4Match] = []
        for _, m in t.objects("match"):
            if m is None:
                t.report("match", "tcp match may not be nil")
                continue
            matches.append(L4Match(**_l4_match_fields(m)))
            m.finish()
        tcp.append(TCPRoute(match=tuple(matches), route=_route_destinations(t)))
        t.finish()
    tls: list[TLSRoute] = []
    for _, t in r.objects("tls"):
        if t is None:
            r.report("tls", "TLS route may not be null")
            continue
        tls_matches: list[TLSMatch] = []
        for _, m in t.objects("match"):
            if m is None:
                t.report("match", "TLS match may not be null")
                continue
            tls_matches.append(TLSMatch(sni_hosts=m.str_list("sniHosts"), **_l4_match_fields(m)))
            m.finish()
        tls.append(TLSRoute(match=tuple(tls_matches), route=_route_destinations(t)))
        t.finish()
    http_count = sum(1 for _ in r.objects("http"))
    if http_count:
        r.report("http", "HTTP routes are not translated by tcpmesh (TCP/TLS only); ignored", Severity.WARNING)
    r.ignore("http")
    return VirtualService(
        meta=meta,
        hosts=r.str_list("hosts"),
        gateways=r.str_list("gateways"),
        tcp=tuple(tcp),
        tls=tuple(tls),
        http_route_count=http_count,
        export_to=r.str_list("exportTo"),
    )


# --- DestinationRule ----------------------------------------------------------------------------


def _connection_pool(r: Reader) -> ConnectionPool:
    tcp = None
    tcp_r = r.obj("tcp")
    if tcp_r is not None:
        keepalive = None
        ka_r = tcp_r.obj("tcpKeepalive")
        if ka_r is not None:
            keepalive = TCPKeepalive(
                probes=ka_r.integer("probes"),
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
    has_http = r.has("http")
    pool = ConnectionPool(tcp=tcp, has_http=has_http)
    r.finish()
    return pool


def _load_balancer(r: Reader) -> LoadBalancer:
    ch = None
    ch_r = r.obj("consistentHash")
    if ch_r is not None:
        other = next((k for k in ("httpHeaderName", "httpCookie", "httpQueryParameterName") if ch_r.has(k)), "")
        ring = ch_r.obj("ringHash")
        ring_size = None
        if ring is not None:
            ring_size = ring.integer("minimumRingSize")
            ring.finish()
        maglev = ch_r.obj("maglev")
        table = None
        if maglev is not None:
            table = maglev.integer("tableSize")
            maglev.finish()
        ch = ConsistentHash(
            use_source_ip=ch_r.boolean("useSourceIp"),
            other_key=other,
            minimum_ring_size=ch_r.integer("minimumRingSize"),
            ring_hash_minimum_ring_size=ring_size,
            maglev_table_size=table,
        )
        ch_r.finish()
    warmup = None
    if r.has("warmupDurationSecs"):
        warmup = r.duration_ms("warmupDurationSecs")
    wr = r.obj("warmup")
    if wr is not None:
        warmup = wr.duration_ms("duration")
        wr.ignore("minimumPercent", "aggression")
        wr.finish()
    lb = LoadBalancer(
        simple=r.enum("simple", _LB_SIMPLE),
        consistent_hash=ch,
        has_locality_setting=r.has("localityLbSetting"),
        warmup_duration_ms=warmup,
    )
    r.ignore("localityLbSetting")
    r.finish()
    return lb


def _outlier(r: Reader) -> OutlierDetection:
    od = OutlierDetection(
        consecutive_5xx_errors=r.opt_integer("consecutive5xxErrors"),
        consecutive_gateway_errors=r.opt_integer("consecutiveGatewayErrors"),
        consecutive_local_origin_failures=r.opt_integer("consecutiveLocalOriginFailures"),
        split_external_local_origin_errors=r.boolean("splitExternalLocalOriginErrors"),
        interval_ms=r.duration_ms("interval"),
        base_ejection_time_ms=r.duration_ms("baseEjectionTime"),
        max_ejection_percent=r.integer("maxEjectionPercent"),
        min_health_percent=r.integer("minHealthPercent"),
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
            number = port_r.integer("number")
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
        tunnel_port = tunnel_r.integer("targetPort")
        tunnel_r.finish()
    r.ignore("retryBudget")
    policy = TrafficPolicy(
        port_level_settings=tuple(ports),
        proxy_protocol_version=proxy_protocol,
        has_tunnel=has_tunnel,
        tunnel_protocol=tunnel_protocol,
        tunnel_target_host=tunnel_host,
        tunnel_target_port=tunnel_port,
        **blocks,
    )
    r.finish()
    return policy


def _destination_rule(r: Reader, meta: Meta) -> DestinationRule:
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


# --- ServiceEntry / WorkloadEntry ----------------------------------------------------------------


def _workload_spec(r: Reader) -> WorkloadSpec:
    spec = WorkloadSpec(
        address=r.string("address"),
        ports=r.int_map("ports"),
        labels=r.labels("labels") or (),
        network=r.string("network"),
        locality=r.string("locality"),
        weight=r.integer("weight"),
        service_account=r.string("serviceAccount"),
    )
    return spec


def _service_entry(r: Reader, meta: Meta) -> ServiceEntry:
    ports: list[ServiceEntryPort] = []
    for _, p in r.objects("ports"):
        if p is None:
            r.report("ports", "service entry port may not be null")
            continue
        ports.append(
            ServiceEntryPort(
                number=p.integer("number"),
                protocol=p.string("protocol"),
                name=p.string("name"),
                target_port=p.integer("targetPort"),
            )
        )
        p.finish()
    endpoints: list[WorkloadSpec] = []
    for _, e in r.objects("endpoints"):
        if e is None:
            r.report("endpoints", "endpoint may not be null")
            continue
        endpoints.append(_workload_spec(e))
        e.finish()
    ws = None
    ws_r = r.obj("workloadSelector")
    if ws_r is not None:
        ws = ws_r.labels("labels") or ()
        ws_r.finish()
    return ServiceEntry(
        meta=meta,
        hosts=r.str_list("hosts"),
        addresses=r.str_list("addresses"),
        ports=tuple(ports),
        location=r.enum("location", ("MESH_EXTERNAL", "MESH_INTERNAL"), "MESH_EXTERNAL"),
        resolution=r.enum("resolution", ("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"), "NONE"),
        endpoints=tuple(endpoints),
        workload_selector=ws,
        export_to=r.str_list("exportTo"),
        subject_alt_names=r.str_list("subjectAltNames"),
    )


def _workload_entry(r: Reader, meta: Meta) -> WorkloadEntry:
    return WorkloadEntry(meta=meta, spec=_workload_spec(r))


# --- Kubernetes ---------------------------------------------------------------------------------

_K8S_SERVICE_IGNORED = (
    "sessionAffinity",
    "sessionAffinityConfig",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
    "ipFamilies",
    "ipFamilyPolicy",
    "clusterIPs",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "externalIPs",
    "publishNotReadyAddresses",
    "healthCheckNodePort",
    "allocateLoadBalancerNodePorts",
    "loadBalancerClass",
    "trafficDistribution",
)


def _service(r: Reader, meta: Meta) -> Service:
    ports: list[ServicePort] = []
    for _, p in r.objects("ports"):
        if p is None:
            continue
        target = p.str_or_int("targetPort")
        ports.append(
            ServicePort(
                port=p.integer("port"),
                name=p.string("name"),
                protocol=p.string("protocol", "TCP"),
                target_port=target if target is not None else 0,
                app_protocol=p.string("appProtocol"),
            )
        )
        p.ignore("nodePort")
        p.finish()
    r.ignore(*_K8S_SERVICE_IGNORED)
    return Service(
        meta=meta,
        ports=tuple(ports),
        selector=r.labels("selector"),
        cluster_ip=r.string("clusterIP"),
        type=r.string("type", "ClusterIP"),
        external_name=r.string("externalName"),
    )


_K8S_POD_IGNORED = (
    "serviceAccountName",
    "serviceAccount",
    "volumes",
    "nodeSelector",
    "affinity",
    "tolerations",
    "securityContext",
    "terminationGracePeriodSeconds",
    "restartPolicy",
    "dnsPolicy",
    "hostname",
    "imagePullSecrets",
    "initContainers",
    "priorityClassName",
    "hostNetwork",
    "automountServiceAccountToken",
    "topologySpreadConstraints",
    "schedulerName",
    "enableServiceLinks",
    "subdomain",
)
_K8S_CONTAINER_IGNORED = (
    "imagePullPolicy",
    "resources",
    "volumeMounts",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "securityContext",
    "workingDir",
    "envFrom",
    "lifecycle",
    "stdin",
    "tty",
    "terminationMessagePath",
    "terminationMessagePolicy",
)
_K8S_DEPLOYMENT_IGNORED = (
    "strategy",
    "minReadySeconds",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "paused",
)


def _deployment(r: Reader, meta: Meta) -> Deployment:
    selector: tuple[tuple[str, str], ...] = ()
    sel = r.obj("selector")
    if sel is not None:
        selector = sel.labels("matchLabels") or ()
        sel.ignore("matchExpressions")
        sel.finish()
    template_labels: tuple[tuple[str, str], ...] = ()
    containers: list[Container] = []
    tmpl = r.obj("template")
    if tmpl is not None:
        tmeta = tmpl.obj("metadata")
        if tmeta is not None:
            template_labels = tmeta.labels("labels") or ()
            tmeta.ignore("annotations", "name", "namespace", "creationTimestamp")
            tmeta.finish()
        pod = tmpl.obj("spec")
        if pod is not None:
            for _, c in pod.objects("containers"):
                if c is None:
                    continue
                cports: list[tuple[str, int]] = []
                for _, p in c.objects("ports"):
                    if p is None:
                        continue
                    cports.append((p.string("name"), p.integer("containerPort")))
                    p.ignore("protocol", "hostPort", "hostIP")
                    p.finish()
                env: list[tuple[str, str]] = []
                for _, e in c.objects("env"):
                    if e is None:
                        continue
                    env.append((e.string("name"), e.string("value")))
                    e.ignore("valueFrom")
                    e.finish()
                containers.append(
                    Container(
                        name=c.string("name"),
                        image=c.string("image"),
                        args=c.str_list("args"),
                        command=c.str_list("command"),
                        ports=tuple(cports),
                        env=tuple(env),
                    )
                )
                c.ignore(*_K8S_CONTAINER_IGNORED)
                c.finish()
            pod.ignore(*_K8S_POD_IGNORED)
            pod.finish()
        tmpl.finish()
    r.ignore(*_K8S_DEPLOYMENT_IGNORED)
    # extensions/v1beta1 Deployments may omit the selector: it defaults to the template labels.
    if not selector and sel is None:
        selector = template_labels
    replicas = r.opt_integer("replicas")
    return Deployment(
        meta=meta,
        replicas=1 if replicas is None else replicas,
        selector=selector,
        template_labels=template_labels,
        containers=tuple(containers),
    )


_PARSERS: dict[str, Callable[[Reader, Meta], Resource]] = {
    "Gateway": _gateway,
    "VirtualService": _virtual_service,
    "DestinationRule": _destination_rule,
    "ServiceEntry": _service_entry,
    "WorkloadEntry": _workload_entry,
    "Service": _service,
    "Deployment": _deployment,
}
