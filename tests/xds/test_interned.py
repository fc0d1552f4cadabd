"""The intern table keeps a value while something else holds it, and sweeps the rest only when it has grown; a
batch of puts the caller holds is not swept on the way."""

from __future__ import annotations

from tcpmesh.xds.interned import SWEEP_MIN, InternTable


class Value:
    pass


def test_values_nobody_holds_are_swept_once_the_table_doubles() -> None:
    table: InternTable[int, Value] = InternTable()
    held = []
    for k in range(SWEEP_MIN - 1):
        value = Value()
        if k % 2:
            held.append(value)
        table.put(k, value)
    del value
    assert len(table) == SWEEP_MIN - 1  # below the first sweep: nothing dropped yet
    table.put(-1, kept := Value())
    assert len(table) == len(held) + 1  # swept: only what is held stays
    assert table.get(-1) is kept


def test_a_batch_the_caller_holds_is_not_swept_and_a_batch_of_few_is() -> None:
    table: InternTable[int, Value] = InternTable()
    held = [Value() for _ in range(4 * SWEEP_MIN)]
    swept = []
    original = table.sweep

    def counting() -> None:
        swept.append(len(table))
        original()

    table.sweep = counting  # type: ignore[method-assign]
    with table.batch():
        for k, value in enumerate(held):
            table.put(k, value)
    assert swept == []  # most of the table was this batch's, held by its caller: nothing to find
    assert len(table) == len(held)
    for k in range(len(held), 2 * len(held) - 1):  # dropped as put, below the next sweep mark
        table.put(k, Value())
    assert swept == []
    with table.batch():  # a few more then, the table past its mark: most of it is not this batch's
        for k in range(2 * len(held), 2 * len(held) + 10):
            table.put(k, Value())
    assert swept == [2 * len(held) + 9]
    assert len(table) == len(held)
