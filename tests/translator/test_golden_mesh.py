"""Sidecar (``mesh``) config compared to readable YAML goldens: listeners per service address and port.

Regenerate after an intended change with: UPDATE_GOLDEN=1 .venv/bin/pytest tests/translator/test_golden_mesh.py
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tcpmesh.model.config import load_config
from tcpmesh.render import dump_yaml, resources_to_dict, static_bootstrap
from tcpmesh.runtime.envoy import validate_config
from tcpmesh.translator import EnvoyResources, Proxy, TranslateOptions, translate
from tests.references import assert_canonical, walked

from .golden import assert_matches_golden
from .test_golden import INLINE

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ROOT / "tests" / "testdata" / "inputs"
SERVICES = ROOT / "samples/tcp-echo/tcp-echo-services.yaml"
SLEEP = (("app", "sleep"),)


@dataclass(frozen=True)
class Case:
    inputs: tuple[Path, ...]
    labels: tuple[tuple[str, str], ...] = SLEEP
    namespace: str = "default"


CASES = {
    "mesh-20-80": Case((SERVICES, INPUTS / "mesh-20-80.yaml")),
    "mesh-source-labels-match": Case((SERVICES, INPUTS / "mesh-source-labels.yaml")),
    "mesh-source-labels-nomatch": Case((SERVICES, INPUTS / "mesh-source-labels.yaml"), labels=(("app", "curl"),)),
    "mesh-source-namespace-match": Case((SERVICES, INPUTS / "mesh-source-namespace.yaml"), namespace="test"),
    "mesh-source-namespace-nomatch": Case((SERVICES, INPUTS / "mesh-source-namespace.yaml")),
    "mesh-destination-subnets": Case((SERVICES, INPUTS / "mesh-destination-subnets.yaml")),
    "mesh-default-chain": Case((INPUTS / "mesh-default-chain.yaml",)),
    "mesh-two-vs": Case((SERVICES, INPUTS / "mesh-two-vs.yaml")),
    "mesh-tls": Case((INPUTS / "mesh-tls.yaml",)),
}


def translate_case(case: Case, options: TranslateOptions = INLINE) -> EnvoyResources:
    config, problems = load_config(list(case.inputs), "default")
    errors = [str(p) for p in problems if p.is_error]
    assert not errors, errors
    resources = translate(config, Proxy.sidecar(case.namespace, case.labels), options)
    assert resources.references == walked(resources)  # reported with the resources, not part of them
    assert_canonical(resources)
    return resources


def render_mesh_case(case: Case, options: TranslateOptions = INLINE) -> str:
    """Everything a sidecar gets: its listeners, plus PassthroughCluster among the clusters."""
    resources = translate_case(case, options)
    text = dump_yaml(resources_to_dict(resources))
    return text.replace(str(ROOT) + "/", "")


@pytest.mark.parametrize("name", sorted(CASES))
def test_sidecar_config_matches_golden(name: str) -> None:
    actual = render_mesh_case(CASES[name])
    assert_matches_golden(name, actual)


@pytest.mark.envoy
@pytest.mark.parametrize("name", sorted(CASES))
def test_real_envoy_accepts_sidecar_config(name: str, tmp_path: Path) -> None:
    ok, output = validate_config(static_bootstrap(translate_case(CASES[name])))
    assert ok, output[-3000:]
