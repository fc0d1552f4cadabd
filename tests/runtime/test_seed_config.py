"""What `tcpmesh up` applies to its store: the default sample on the first start only, named PATHs on every
start, on top of what an earlier run left (the README's HTTP steps after the quick start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpmesh.runtime.local import LocalMesh

ROOT = Path(__file__).resolve().parents[2]
TCP_ECHO = ROOT / "samples" / "tcp-echo"
REVIEWS = [ROOT / "samples" / "bookinfo-reviews" / n for n in ("reviews-services.yaml", "reviews-gateway.yaml")]


def names(mesh: LocalMesh) -> set[str]:
    config = mesh.config()
    assert config is not None
    return {vs.meta.name for vs in config.virtual_services} | {gw.meta.name for gw in config.gateways}


def test_a_later_start_serves_the_store_as_left_unless_paths_are_named(tmp_path: Path) -> None:
    mesh = LocalMesh(tmp_path / "state")
    assert mesh.seed_config([TCP_ECHO])
    first = names(mesh)
    assert "tcp-echo" in first
    assert not mesh.seed_config([TCP_ECHO])  # a bare `up` again: the store as it was left

    assert mesh.seed_config(REVIEWS, onto_existing=True)
    mesh2 = LocalMesh(tmp_path / "state")
    assert names(mesh2) == first | {"reviews-gateway", "reviews"}  # applied on top: nothing deleted


def test_a_bad_path_onto_an_existing_store_keeps_it(tmp_path: Path) -> None:
    mesh = LocalMesh(tmp_path / "state")
    assert mesh.seed_config([TCP_ECHO])
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: 3}\n")
    with pytest.raises(RuntimeError):
        mesh.seed_config([bad], onto_existing=True)
    assert mesh.store_path.exists()
    assert "tcp-echo" in names(LocalMesh(tmp_path / "state"))
