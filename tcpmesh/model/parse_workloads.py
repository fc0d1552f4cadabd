"""ServiceEntry, WorkloadEntry and Kubernetes Service / Deployment specs → typed values."""

from __future__ import annotations

from tcpmesh.model.reader import Reader
from tcpmesh.model.resources import (
    Container,
    Deployment,
    Meta,
    Service,
    ServiceEntry,
    ServiceEntryPort,
    ServicePort,
    WorkloadEntry,
    WorkloadSpec,
)

__all__ = ["parse_deployment", "parse_service", "parse_service_entry", "parse_workload_entry"]

# --- ServiceEntry / WorkloadEntry ----------------------------------------------------------------


def _workload_spec(r: Reader) -> WorkloadSpec:
    spec = WorkloadSpec(
        address=r.string("address"),
        ports=r.int_map("ports"),
        labels=r.labels("labels") or (),
        network=r.string("network"),
        locality=r.string("locality"),
        weight=r.integer("weight", proto="uint32"),
        service_account=r.string("serviceAccount"),
    )
    return spec


def parse_service_entry(r: Reader, meta: Meta) -> ServiceEntry:
    ports: list[ServiceEntryPort] = []
    for _, p in r.objects("ports"):
        if p is None:
            r.report("ports", "service entry port may not be null")
            continue
        ports.append(
            ServiceEntryPort(
                number=p.integer("number", proto="uint32"),
                protocol=p.string("protocol"),
                name=p.string("name"),
                target_port=p.integer("targetPort", proto="uint32"),
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


def parse_workload_entry(r: Reader, meta: Meta) -> WorkloadEntry:
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


def parse_service(r: Reader, meta: Meta) -> Service:
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


def parse_deployment(r: Reader, meta: Meta) -> Deployment:
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
