"""The apply path that convergence depends on: moving a resource out of a large multi-document file must leave the
store's parse cache exactly as a fresh parse of the directory would, without re-parsing that file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpmesh.store import ConfigStore

_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs-{i}
  namespace: default
spec:
  hosts: [svc-{i}.default.svc.cluster.local]
  tcp:
  - route:
    - destination: {{host: svc-{i}.default.svc.cluster.local}}
      weight: {w}
"""


def _multi(n: int) -> str:
    return "# leading comment\n---\n" + "---\n# between\n".join(_VS.format(i=i, w=100) for i in range(n)) + "# tail\n"


def _assert_same_as_fresh(store: ConfigStore, directory: Path) -> None:
    fresh = ConfigStore(directory)
    fresh_config, fresh_problems = fresh.load()
    config, problems = store.load()
    assert config == fresh_config
    assert [str(p) for p in problems] == [str(p) for p in fresh_problems]
    for path, parsed in fresh._cache.items():
        mine = store._cache[path]
        assert mine.signature == parsed.signature
        assert mine.spans == parsed.spans
        assert mine.problems == parsed.problems
        assert len(mine.items) == len(parsed.items)
        for a, b in zip(mine.items, parsed.items, strict=True):
            assert a.resource == b.resource
            assert dict(a.resource.meta.field_lines) == dict(b.resource.meta.field_lines)
            da, db = a.document, b.document
            assert (da.index, da.line, da.start, da.end) == (db.index, db.line, db.start, db.end)


@pytest.mark.parametrize("order", [[3, 0, 9, 5], [9, 8, 7], [0, 1, 2]])
def test_moving_documents_out_keeps_cache_exact(tmp_path: Path, order: list[int]) -> None:
    (tmp_path / "mesh.yaml").write_text(_multi(10))
    store = ConfigStore(tmp_path)
    store.load()
    for i in order:
        result = store.apply(_VS.format(i=i, w=50), "edit.yaml")
        assert result.ok, result.problems
        assert result.lines == [f"virtualservice.networking.istio.io/vs-{i} configured"]
        _assert_same_as_fresh(store, tmp_path)


def test_delete_from_multi_document_file_keeps_cache_exact(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text(_multi(5))
    store = ConfigStore(tmp_path)
    store.load()
    for i in (2, 0, 4):
        assert store.delete(_VS.format(i=i, w=100)).lines == [f"virtualservice.networking.istio.io/vs-{i} deleted"]
        _assert_same_as_fresh(store, tmp_path)
    assert sorted(r.meta.name for r in store.get("VirtualService")) == ["vs-1", "vs-3"]
