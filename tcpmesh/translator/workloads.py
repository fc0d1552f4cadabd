"""Workloads without Kubernetes: Deployment replicas become pods with their own loopback address.

The assignment is a pure function of the config, so the translator (endpoints) and the local runtime
(which starts the echo pods) agree on every pod's address without talking to each other.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tcpmesh.model.config import Config
from tcpmesh.model.resources import Container, Labels, selector_matches

__all__ = ["DEFAULT_POD_NETWORK", "MAX_PODS", "Pod", "Workload", "pods_of", "workloads_of"]

DEFAULT_POD_NETWORK = "127.0.1.0"
"""First pod gets 127.0.1.1, like a pod IP on a node's pod CIDR; the range continues into 127.0.2.x."""
MAX_PODS = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod:
    name: str
    namespace: str
    deployment: str
    labels: Labels
    ip: str
    containers: tuple[Container, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """A pod or a WorkloadEntry: something with an address that Services and ServiceEntries select."""

    kind: str
    name: str
    namespace: str
    address: str
    labels: Labels
    named_ports: tuple[tuple[str, int], ...] = ()
    """Pods: named containerPorts; WorkloadEntries: their ``ports`` map (service port name → port)."""
    weight: int = 0
    locality: str = ""
    service_account: str = ""

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def matches(self, selector: Labels) -> bool:
        return selector_matches(selector, self.label_dict())


def pods_of(config: Config, pod_network: str = DEFAULT_POD_NETWORK) -> tuple[Pod, ...]:
    """One pod per Deployment replica, addresses handed out in (namespace, name, replica) order."""
    base = int(ipaddress.IPv4Address(pod_network))
    pods: list[Pod] = []
    for dep in sorted(config.deployments, key=lambda d: (d.meta.namespace, d.meta.name)):
        for replica in range(max(dep.replicas, 0)):
            if len(pods) >= MAX_PODS:
                return tuple(pods)
            ip = str(ipaddress.IPv4Address(base + len(pods) + 1))
            pods.append(
                Pod(
                    name=f"{dep.meta.name}-{replica}",
                    namespace=dep.meta.namespace,
                    deployment=dep.meta.name,
                    labels=dep.template_labels,
                    ip=ip,
                    containers=dep.containers,
                )
            )
    return tuple(pods)


def workloads_of(config: Config, pod_network: str = DEFAULT_POD_NETWORK) -> tuple[Workload, ...]:
    out = [
        Workload(
            kind="Pod",
            name=p.name,
            namespace=p.namespace,
            address=p.ip,
            labels=p.labels,
            named_ports=tuple((name, port) for c in p.containers for name, port in c.ports if name),
        )
        for p in pods_of(config, pod_network)
    ]
    out.extend(
        Workload(
            kind="WorkloadEntry",
            name=we.meta.name,
            namespace=we.meta.namespace,
            address=we.spec.address,
            labels=we.spec.labels,
            named_ports=we.spec.ports,
            weight=we.spec.weight,
            locality=we.spec.locality,
            service_account=we.spec.service_account,
        )
        for we in config.workload_entries
    )
    return tuple(out)
