"""Port wiring between services and the workloads they select:

- TM0502: a WorkloadEntry ``ports`` name that no port of a selecting Service/ServiceEntry has (a typo there
  silently falls back to the targetPort or the service port);
- TM0503: a Service port whose named ``targetPort`` a selected workload does not declare; that workload gets
  no endpoint for the port.
"""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import TARGET_PORT_NOT_FOUND, WORKLOAD_PORT_NAME_UNKNOWN
from tcpmesh.analysis.context import Context
from tcpmesh.analysis.findings import Finding
from tcpmesh.model.resources import Labels, Meta
from tcpmesh.translator.workloads import Workload

__all__ = ["analyze_workload_ports"]


def analyze_workload_ports(ctx: Context) -> Iterator[Finding]:
    for svc in ctx.config.services:
        if not svc.selector or svc.external_name:
            continue
        selected = _selected(ctx, svc.meta, svc.selector)
        yield from _unknown_names(ctx, svc.meta, {p.name for p in svc.ports}, selected)
        for i, port in enumerate(svc.ports):
            target = port.target_port
            if not isinstance(target, str):
                continue
            missing = [w for w in selected if not _serves(w, port.name, target)]
            if missing:
                names = ", ".join(f"{w.kind} {w.name}" for w in missing)
                yield TARGET_PORT_NOT_FOUND.at(
                    svc.meta,
                    f"spec.ports[{i}].targetPort",
                    f"targetPort {target!r} is not a named port of {names}; they get no endpoint for port {port.port}",
                )
    for se in ctx.config.service_entries:
        if se.workload_selector:
            selected = _selected(ctx, se.meta, se.workload_selector)
            yield from _unknown_names(ctx, se.meta, {p.name for p in se.ports}, selected)


def _selected(ctx: Context, meta: Meta, selector: Labels) -> list[Workload]:
    return [w for w in ctx.index.workloads if w.namespace == meta.namespace and w.matches(selector)]


def _serves(w: Workload, port_name: str, target: str) -> bool:
    """index._workload_port: a WorkloadEntry's ports map by service port name first, then the named target."""
    named = dict(w.named_ports)
    return (w.kind == "WorkloadEntry" and port_name in named) or target in named


def _unknown_names(ctx: Context, owner: Meta, port_names: set[str], selected: list[Workload]) -> Iterator[Finding]:
    entries = {we.meta.name: we for we in ctx.config.workload_entries if we.meta.namespace == owner.namespace}
    for w in selected:
        we = entries.get(w.name) if w.kind == "WorkloadEntry" else None
        if we is None:
            continue
        for name, _ in we.spec.ports:
            if name not in port_names:
                yield WORKLOAD_PORT_NAME_UNKNOWN.at(
                    we.meta,
                    "spec.ports",
                    f"port name {name!r} is not a port of {owner.kind} {owner.key} "
                    f"(ports: {', '.join(sorted(port_names)) or 'none'}); it is ignored for that service",
                )
