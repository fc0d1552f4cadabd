"""A whole local mesh (control plane, Envoy, echo pods) per test, on free ports and its own pod addresses."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpmesh.runtime.local import LocalMesh, MeshPorts
from tcpmesh.runtime.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


class Mesh(LocalMesh):
    gateway_ports: dict[int, int]

    def port(self, sample_port: int) -> int:
        """The free port standing in for a sample's gateway port (31400 → something free)."""
        return self.gateway_ports[sample_port]

    def sample_text(self, path: Path) -> str:
        text = path.read_text()
        if not self.gateway_ports:
            return text
        # One pass, so a substituted port is never substituted again.
        pattern = r"\b(" + "|".join(str(p) for p in self.gateway_ports) + r")\b"
        return re.sub(pattern, lambda m: str(self.gateway_ports[int(m.group(1))]), text)

    def copy_samples(self, paths: list[Path], into: Path) -> list[Path]:
        into.mkdir(parents=True, exist_ok=True)
        out = []
        for path in paths:
            for file in sorted(path.glob("*.yaml")) if path.is_dir() else [path]:
                target = into / file.name
                target.write_text(self.sample_text(file))
                out.append(target)
        return out

    def apply(self, path: Path) -> dict[str, object]:
        from tcpmesh.apiclient import request_json

        code, payload = request_json(
            self.control_plane.http,
            "/api/apply?source=" + path.name,
            body=self.sample_text(path).encode(),
            token=self.control_plane.token,
        )
        return {"code": code, **payload}


ADS_API_TYPES = ["GRPC", "DELTA_GRPC"]


@pytest.fixture(params=ADS_API_TYPES, ids=["sotw", "delta"])
def ads_api_type(request: pytest.FixtureRequest) -> str:
    """Every end-to-end test runs once with a SotW and once with a delta ADS Envoy."""
    return str(request.param)


def make_mesh(
    tmp_path: Path, ads_api_type: str, control_plane_args: tuple[str, ...] = (), program: tuple[str, ...] = ()
) -> Mesh:
    # A pod network of its own (127.<a>.<b>.0) so parallel runs never share pod addresses.
    rnd = random.Random()
    pod_network = f"127.{rnd.randrange(100, 250)}.{rnd.randrange(1, 250)}.0"
    # distinct: two equal gateway ports would merge the listeners (8080: the HTTP samples' gateway port)
    ads, http, gateway, gateway2, http_gateway = free_ports(5)
    m = Mesh(
        tmp_path / "state",
        MeshPorts(ads=ads, http=http, admin=0),
        ads_api_type=ads_api_type,
        pod_network=pod_network,
        control_plane_args=control_plane_args,
        control_plane_program=program,
    )
    m.gateway_ports = {31400: gateway, 31401: gateway2, 8080: http_gateway}
    return m


@pytest.fixture
def mesh(tmp_path: Path, ads_api_type: str) -> Iterator[Mesh]:
    m = make_mesh(tmp_path, ads_api_type)
    try:
        yield m
    finally:
        m.stop()
