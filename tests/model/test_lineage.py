"""A Config's lineage: which positions an in-place edit replaced, so that consumers find a changed resource
among 10 000 without comparing them. A hint: it never changes what a Config equals."""

from __future__ import annotations

from typing import Any

from tcpmesh.model.config import LINEAGE_KEPT, LINEAGE_POSITIONS, NO_LINEAGE, Config


def edited(old: tuple[Any, ...], *positions: int) -> tuple[Any, ...]:
    out = list(old)
    for i in positions:
        out[i] = object()
    return tuple(out)


def test_edits_compose_from_every_earlier_tuple_kept() -> None:
    t0 = tuple(object() for _ in range(100))
    t1 = edited(t0, 3)
    t2 = edited(t1, 50, 3)
    lineage = NO_LINEAGE.then("virtual_services", t0, t1, [3]).then("virtual_services", t1, t2, [50, 3])
    assert lineage.positions(t1, t2) == (3, 50)
    assert lineage.positions(t0, t2) == (3, 50)
    assert lineage.positions(t2, t2) == ()
    assert lineage.positions(t0, t1) is None  # t1 is no longer the field's tuple: not kept
    assert lineage.positions(t2, t0) is None
    assert lineage.without("virtual_services").positions(t1, t2) is None
    assert lineage.without("services") is lineage


def test_a_lineage_stays_small() -> None:
    tuples = [tuple(object() for _ in range(200))]
    lineage = NO_LINEAGE
    for step in range(10):
        new = edited(tuples[-1], step)
        lineage = lineage.then("virtual_services", tuples[-1], new, [step])
        tuples.append(new)
    known = [old for old in tuples[:-1] if lineage.positions(old, tuples[-1]) is not None]
    assert len(known) == LINEAGE_KEPT  # the latest earlier tuples only
    assert lineage.positions(tuples[-LINEAGE_KEPT - 1], tuples[-1]) == tuple(range(10 - LINEAGE_KEPT, 10))
    many = edited(tuples[0], *range(LINEAGE_POSITIONS))
    more = edited(many, LINEAGE_POSITIONS)
    big = NO_LINEAGE.then("virtual_services", tuples[0], many, range(LINEAGE_POSITIONS))
    big = big.then("virtual_services", many, more, [LINEAGE_POSITIONS])
    assert big.positions(many, more) == (LINEAGE_POSITIONS,)
    assert big.positions(tuples[0], more) is None  # past LINEAGE_POSITIONS: compare instead


def test_the_lineage_is_not_content() -> None:
    t0 = tuple(object() for _ in range(5))
    t1 = edited(t0, 2)
    a = Config(virtual_services=t1)
    b = Config(virtual_services=t1, lineage=NO_LINEAGE.then("virtual_services", t0, t1, [2]))
    assert a == b
    assert hash(a) == hash(b)
    assert "lineage" not in repr(b)
    assert b.moved(t0, t1) == (2,)
    assert a.moved(t0, t1) is None
    assert len(b) == 5
