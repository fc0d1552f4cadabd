"""Synthetic meshes for the benchmarks: N TCP services behind one gateway, one gateway port each.

Per service ``svc-<i>``: a Service (port 9000, selector app=svc-<i>), two WorkloadEntries (v1, v2), a
DestinationRule with subsets v1/v2, and a VirtualService sending gateway port ``base_port + i`` 80/20 to them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MeshSpec", "mesh_files", "mesh_yaml", "vs_yaml"]

GATEWAY = "bench-gw"
NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class MeshSpec:
    services: int
    base_port: int = 20000
    """Gateway port of service i is base_port + i."""
    v1_address: str = ""
    """If set, every v1 WorkloadEntry has this address (and v2_address for v2): real backends for Envoy runs."""
    v2_address: str = ""
    v1_port: int = 9000
    v2_port: int = 9000
    ports: tuple[int, ...] = ()
    """Explicit gateway ports (one per service) instead of base_port + i."""

    def port(self, i: int) -> int:
        return self.ports[i] if self.ports else self.base_port + i

    def address(self, i: int, version: int) -> str:
        fixed = self.v1_address if version == 1 else self.v2_address
        if fixed:
            return fixed
        n = i * 2 + version
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def gateway_yaml(spec: MeshSpec) -> str:
    servers = "".join(
        f"""  - port:
      number: {spec.port(i)}
      name: tcp-{i}
      protocol: TCP
    hosts:
    - "*"
"""
        for i in range(spec.services)
    )
    return f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: {GATEWAY}
  namespace: {NAMESPACE}
spec:
  selector:
    istio: ingressgateway
  servers:
{servers}"""


def vs_yaml(spec: MeshSpec, i: int, w1: int = 80, w2: int = 20) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-{i}
  namespace: {NAMESPACE}
spec:
  hosts:
  - "*"
  gateways:
  - {GATEWAY}
  tcp:
  - match:
    - port: {spec.port(i)}
    route:
    - destination:
        host: svc-{i}.{NAMESPACE}.svc.cluster.local
        port:
          number: 9000
        subset: v1
      weight: {w1}
    - destination:
        host: svc-{i}.{NAMESPACE}.svc.cluster.local
        port:
          number: 9000
        subset: v2
      weight: {w2}
"""


def service_yaml(spec: MeshSpec, i: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: svc-{i}
  namespace: {NAMESPACE}
spec:
  ports:
  - name: tcp
    port: 9000
  selector:
    app: svc-{i}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc-{i}
  namespace: {NAMESPACE}
spec:
  host: svc-{i}.{NAMESPACE}.svc.cluster.local
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: svc-{i}-v1
  namespace: {NAMESPACE}
spec:
  address: {spec.address(i, 1)}
  ports:
    tcp: {spec.v1_port}
  labels:
    app: svc-{i}
    version: v1
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: svc-{i}-v2
  namespace: {NAMESPACE}
spec:
  address: {spec.address(i, 2)}
  ports:
    tcp: {spec.v2_port}
  labels:
    app: svc-{i}
    version: v2
"""


def mesh_yaml(spec: MeshSpec, weights: dict[int, tuple[int, int]] | None = None) -> str:
    """The whole mesh as one multi-document YAML text."""
    weights = weights or {}
    docs = [gateway_yaml(spec)]
    for i in range(spec.services):
        docs.append(service_yaml(spec, i))
        docs.append(vs_yaml(spec, i, *weights.get(i, (80, 20))))
    return "---\n".join(docs)


def mesh_files(spec: MeshSpec, per_file: int = 500) -> dict[str, str]:
    """The mesh as files of `per_file` services each (file name → text): the store refuses files over 4 MiB."""
    files = {"gateway.yaml": gateway_yaml(spec)}
    for start in range(0, spec.services, per_file):
        docs = [f(spec, i) for i in range(start, min(spec.services, start + per_file)) for f in (service_yaml, vs_yaml)]
        files[f"mesh-{start:05d}.yaml"] = "---\n".join(docs)
    return files
