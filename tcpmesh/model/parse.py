"""YAML documents → typed resources. Shape errors (types, unknown fields, bad durations) are reported here;
semantic rules live in :mod:`tcpmesh.model.validate`."""

from __future__ import annotations

from collections.abc import Callable

from tcpmesh.model.gatewayapi.parse import API_VERSIONS as GATEWAY_API_VERSIONS
from tcpmesh.model.gatewayapi.parse import PARSERS as GATEWAY_API_PARSERS
from tcpmesh.model.gatewayapi.parse import internal_kind
from tcpmesh.model.gatewayapi.resources import GROUP as GATEWAY_API_GROUP
from tcpmesh.model.parse_policy import parse_destination_rule
from tcpmesh.model.parse_routing import parse_gateway, parse_virtual_service
from tcpmesh.model.parse_secret import parse_secret
from tcpmesh.model.parse_workloads import parse_deployment, parse_service, parse_service_entry, parse_workload_entry
from tcpmesh.model.pickled import FieldLines
from tcpmesh.model.problems import Problem, Severity
from tcpmesh.model.reader import Context, Reader
from tcpmesh.model.resources import (
    Meta,
    Resource,
    Source,
)
from tcpmesh.model.yamlsource import Document, LocatedDict

__all__ = ["ISTIO_API_VERSIONS", "parse_document"]

ISTIO_API_VERSIONS = ("networking.istio.io/v1alpha3", "networking.istio.io/v1beta1", "networking.istio.io/v1")
_KUBE_API_VERSIONS = {
    "Service": ("v1",),
    "Secret": ("v1",),
    "Deployment": ("apps/v1", "apps/v1beta1", "apps/v1beta2", "extensions/v1beta1"),
}
_ISTIO_KINDS = ("Gateway", "VirtualService", "DestinationRule", "ServiceEntry", "WorkloadEntry")
# Kinds people keep in the same files (Istio samples ship ServiceAccounts beside Deployments).
_IGNORED_KINDS = ("Namespace", "ServiceAccount", "ConfigMap", "Sidecar", "PeerAuthentication")


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
    gateway_api = kind in GATEWAY_API_VERSIONS and (
        api_version.startswith(GATEWAY_API_GROUP + "/") or kind not in _ISTIO_KINDS
    )
    if gateway_api:
        allowed: tuple[str, ...] = GATEWAY_API_VERSIONS[kind]
    elif kind in _ISTIO_KINDS:
        allowed = ISTIO_API_VERSIONS
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
        kind=internal_kind(kind) if gateway_api else kind,
        api_version=api_version,
        name=name,
        namespace=namespace,
        labels=labels,
        annotations=annotations,
        source=Source(ctx.file, data.line),
        order=order,
        field_lines=FieldLines(ctx.lines),
    )
    if kind == "Secret":
        secret = parse_secret(top, meta)
        top.finish()
        return secret
    spec = top.obj("spec")
    top.ignore("status")
    top.finish()
    if spec is None:
        if kind in ("Service", "Deployment") or not top.has("spec"):
            top.report("spec", "required field is missing")
        return None
    if gateway_api:
        resource: Resource = GATEWAY_API_PARSERS[meta.kind](spec, meta)  # type: ignore[assignment]
    else:
        resource = _PARSERS[kind](spec, meta)
    spec.finish()
    return resource


_PARSERS: dict[str, Callable[[Reader, Meta], Resource]] = {
    "Gateway": parse_gateway,
    "VirtualService": parse_virtual_service,
    "DestinationRule": parse_destination_rule,
    "ServiceEntry": parse_service_entry,
    "WorkloadEntry": parse_workload_entry,
    "Service": parse_service,
    "Deployment": parse_deployment,
}
