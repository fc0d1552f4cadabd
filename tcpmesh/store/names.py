"""Names, namespaces and labels as the Kubernetes API server validates them (``ValidateObjectMeta``), with its
wording. A store keys resources by these strings, so a name no API server would accept never reaches it."""

from __future__ import annotations

import re

from tcpmesh.model.hostnames import (
    go_quote,
    k8s_dns1123_label_errors,
    k8s_label_key_errors,
    k8s_label_value_errors,
)
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import Resource

__all__ = ["validate_meta"]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    "is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def _subdomain_errors(value: str) -> list[str]:
    errs = ["must be no more than 253 characters"] if len(value) > 253 else []
    return errs + ([] if _SUBDOMAIN.fullmatch(value) else [_SUBDOMAIN_MSG])


def _dns1035_errors(value: str) -> list[str]:
    errs = ["must be no more than 63 characters"] if len(value) > 63 else []
    return errs + ([] if _DNS1035.fullmatch(value) else [_DNS1035_MSG])


def validate_meta(res: Resource) -> list[Problem]:
    """metadata.name (Service: DNS-1035 label; others: DNS-1123 subdomain), metadata.namespace (DNS-1123 label),
    metadata.labels (qualified-name keys, label values) and annotation keys."""
    meta = res.meta
    out: list[Problem] = []

    def err(field: str, value: str, reason: str) -> None:
        out.append(
            Problem(
                message=f"Invalid value: {go_quote(value)}: {reason}",
                file=meta.source.file,
                line=meta.line_of(field),
                kind=meta.kind,
                namespace=meta.namespace,
                name=meta.name,
                field=field,
            )
        )

    if meta.name:
        reasons = _dns1035_errors(meta.name) if meta.kind == "Service" else _subdomain_errors(meta.name)
        for reason in reasons:
            err("metadata.name", meta.name, reason)
    for reason in k8s_dns1123_label_errors(meta.namespace):
        err("metadata.namespace", meta.namespace, reason)
    for key, value in meta.labels:
        for reason in k8s_label_key_errors(key):
            err("metadata.labels", key, reason)
        for reason in k8s_label_value_errors(value):
            err("metadata.labels", value, reason)
    for key, _ in meta.annotations:
        for reason in k8s_label_key_errors(key):
            err("metadata.annotations", key, reason)
    return out
