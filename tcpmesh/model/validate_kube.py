"""The Kubernetes API server's rules for the Service and Deployment fields tcpmesh reads
(``pkg/apis/core/validation`` ``validateServicePort``/``ValidateService``, ``pkg/apis/apps/validation``
``ValidateDeploymentSpec``, ``validateContainerPorts``). Messages use the API server's
``Invalid value: <v>: <reason>`` form; the field path is carried by the problem."""

from __future__ import annotations

from tcpmesh.model.hostnames import (
    go_quote,
    k8s_dns1123_label_errors,
    k8s_label_key_errors,
    k8s_label_value_errors,
    k8s_port_name_errors,
)
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import Deployment, Labels, Service
from tcpmesh.model.validate_common import Reporter

__all__ = ["validate_deployment", "validate_service"]

_PORT_RANGE = "must be between 1 and 65535, inclusive"
_SERVICE_PROTOCOLS = ("SCTP", "TCP", "UDP")


def _invalid(value: str | int, reason: str) -> str:
    shown = go_quote(value) if isinstance(value, str) else str(value)
    return f"Invalid value: {shown}: {reason}"


def _labels(r: Reporter, path: str, labels: Labels) -> None:
    """ValidateLabels: qualified-name keys and label values."""
    for key, value in labels:
        for reason in k8s_label_key_errors(key):
            r.err(f"{path}.{key}", _invalid(key, reason))
        for reason in k8s_label_value_errors(value):
            r.err(f"{path}.{key}", _invalid(value, reason))


def validate_service(svc: Service) -> list[Problem]:
    r = Reporter(svc.meta)
    names: set[str] = set()
    for i, port in enumerate(svc.ports):
        path = f"spec.ports[{i}]"
        # With several ports each needs a name: endpoints and Istio address ports by name.
        if not port.name:
            if len(svc.ports) > 1:
                r.err(f"{path}.name", "Required value")
        else:
            for reason in k8s_dns1123_label_errors(port.name):
                r.err(f"{path}.name", _invalid(port.name, reason))
            if port.name in names:
                r.err(f"{path}.name", f"Duplicate value: {go_quote(port.name)}")
            names.add(port.name)
        if not 1 <= port.port <= 65535:
            r.err(f"{path}.port" if r.has(f"{path}.port") else path, _invalid(port.port, _PORT_RANGE))
        if port.protocol not in _SERVICE_PROTOCOLS:
            supported = ", ".join(go_quote(p) for p in _SERVICE_PROTOCOLS)
            r.err(f"{path}.protocol", f"Unsupported value: {go_quote(port.protocol)}: supported values: {supported}")
        target = port.target_port
        if isinstance(target, int):
            # 0 means unset: the API server defaults it to the service port.
            if target != 0 and not 1 <= target <= 65535:
                r.err(f"{path}.targetPort", _invalid(target, _PORT_RANGE))
        else:
            for reason in k8s_port_name_errors(target):
                r.err(f"{path}.targetPort", _invalid(target, reason))
    if svc.selector is not None:
        _labels(r, "spec.selector", svc.selector)
    return r.problems


def _go_map(labels: Labels) -> str:
    """Go's ``%#v`` of a map[string]string, which the API server prints for a mismatching selector."""
    return "map[string]string{" + ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in labels) + "}"


def validate_deployment(dep: Deployment) -> list[Problem]:
    r = Reporter(dep.meta)
    if dep.replicas < 0:
        r.err("spec.replicas", _invalid(dep.replicas, "must be greater than or equal to 0"))
    _labels(r, "spec.selector.matchLabels", dep.selector)
    # apps/v1 made the selector required (extensions/v1beta1 defaulted it to the template labels).
    if dep.meta.api_version in ("apps/v1", "apps/v1beta2"):
        if not r.has("spec.selector"):
            r.err("spec", "spec.selector: Required value")
        elif not dep.selector and not r.has("spec.selector.matchExpressions"):
            r.err("spec.selector", "Invalid value: {}: empty selector is invalid for deployment")
    _labels(r, "spec.template.metadata.labels", dep.template_labels)
    template = dict(dep.template_labels)
    # The ReplicaSet would never own its own pods.
    if dep.selector and any(template.get(k) != v for k, v in dep.selector):
        path = "spec.template.metadata.labels"
        r.err(
            path if r.has(path) else "spec.template",
            _invalid_map(dep.template_labels, "`selector` does not match template `labels`"),
        )
    for i, container in enumerate(dep.containers):
        port_names: set[str] = set()
        for j, (name, number) in enumerate(container.ports):
            path = f"spec.template.spec.containers[{i}].ports[{j}]"
            if name:
                for reason in k8s_port_name_errors(name):
                    r.err(f"{path}.name", _invalid(name, reason))
                if name in port_names:
                    r.err(f"{path}.name", f"Duplicate value: {go_quote(name)}")
                port_names.add(name)
            if number == 0:
                r.err(f"{path}.containerPort" if r.has(f"{path}.containerPort") else path, "Required value")
            elif not 1 <= number <= 65535:
                r.err(f"{path}.containerPort", _invalid(number, _PORT_RANGE))
    return r.problems


def _invalid_map(labels: Labels, reason: str) -> str:
    return f"Invalid value: {_go_map(labels)}: {reason}"
