"""The model's pickling (`tcpmesh.model.pickled`): what the store's parsed cache holds comes back equal, every
frozen slots class of the model uses the slot-based state, and `FieldLines` packs and unpacks its paths."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import pkgutil
from pathlib import Path

import pytest

import tcpmesh.model
from tcpmesh.model.config import RESOURCE_FIELDS, load_config_text
from tcpmesh.model.pickled import FieldLines, pickled_by_slots

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").rglob("*.yaml"))


def _model_classes() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(tcpmesh.model.__path__, "tcpmesh.model."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == info.name and dataclasses.is_dataclass(value):
                found.append(value)
    return found


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_a_parsed_sample_pickles_back_equal_with_its_field_lines(path: Path) -> None:
    config, _ = load_config_text(path.read_text(), str(path))
    assert config != type(config)()  # the sample parsed to something
    back = pickle.loads(pickle.dumps(config, pickle.HIGHEST_PROTOCOL))
    assert back == config
    recorded = 0
    for name in RESOURCE_FIELDS:
        for before, after in zip(getattr(config, name), getattr(back, name), strict=True):
            meta = getattr(before, "meta", None)
            if meta is not None:
                assert dict(after.meta.field_lines) == dict(meta.field_lines)
                recorded += len(meta.field_lines)
    assert recorded > 0


def test_every_frozen_slots_class_of_the_model_pickles_by_its_slots() -> None:
    classes = [c for c in _model_classes() if "__slots__" in vars(c) and c.__dataclass_params__.frozen]  # type: ignore[attr-defined]
    assert len(classes) > 50
    missing = [c.__qualname__ for c in classes if "pickled_by_slots" not in c.__setstate__.__qualname__]
    assert not missing, f"add @pickled_by_slots above @dataclass: {missing}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Base:
    a: int


@pickled_by_slots
@dataclasses.dataclass(frozen=True, slots=True)
class _Derived(_Base):
    b: str = "x"


def test_a_subclass_sets_its_base_slots_and_a_state_of_another_shape_fails() -> None:
    value = _Derived(1, "y")
    assert pickle.loads(pickle.dumps(value)) == value
    broken = _Derived.__new__(_Derived)
    with pytest.raises(ValueError, match="another version"):
        broken.__setstate__([1])  # type: ignore[attr-defined]  # one field short: another version of the class
    with pytest.raises(ValueError, match="another version"):
        broken.__setstate__([1, "y", 2])  # type: ignore[attr-defined]  # one too many


def test_pickled_by_slots_refuses_a_class_without_slots() -> None:
    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: int

    with pytest.raises(TypeError, match="is not a slot"):
        pickled_by_slots(Plain)


@pytest.mark.parametrize(
    "lines",
    [{}, {"spec": 3}, {"spec.tcp[0].route[1].weight": 12, "metadata.name": 4, "spec": 5}],
    ids=["empty", "one", "several"],
)
def test_field_lines_pack_into_one_string_and_back(lines: dict[str, int]) -> None:
    packed = pickle.dumps(FieldLines(dict(lines)))
    back = pickle.loads(packed)
    assert dict(back) == lines
    assert list(back) == list(lines)  # order kept: problems are listed in it
    assert len(back) == len(lines)
    assert all(back[path] == line for path, line in lines.items())
    assert "nowhere" not in back


def test_field_lines_with_a_nul_in_a_path_pickle_as_the_dict() -> None:
    lines = {"a\0b": 1, "c": 2}
    assert dict(pickle.loads(pickle.dumps(FieldLines(dict(lines))))) == lines


def test_field_lines_hold_the_parsers_dict_so_later_paths_are_kept() -> None:
    lines = {"metadata.name": 2}
    field_lines = FieldLines(lines)
    lines["spec.hosts"] = 5  # the parser adds the spec's paths after it made the Meta
    assert field_lines["spec.hosts"] == 5
    assert dict(pickle.loads(pickle.dumps(field_lines))) == lines
