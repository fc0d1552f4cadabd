"""The frames that send a changed kind to the translation worker rebuild it exactly, reusing the worker's objects
for the unchanged runs (the worker's translator then sees the same objects and does no work for them)."""

from __future__ import annotations

from typing import Any

from tcpmesh.config_frames import RESOURCES_PER_FRAME, config_frames


def rebuilt(old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    """What the worker holds after the frames (as its loop applies them), and the frames."""
    frames = list(config_frames("virtual_services", old, new))
    out: list[Any] = []
    for frame in frames:
        if frame[0] == "old":
            out.extend(old[frame[2] : frame[3]])
        else:
            out.extend(frame[2])
    return frames, tuple(out)


def test_an_edit_in_place_sends_the_changed_resources_only() -> None:
    old = tuple(object() for _ in range(10_000))
    new = list(old)
    new[0], new[5000], new[5001], new[-1] = object(), object(), object(), object()
    frames, got = rebuilt(old, tuple(new))
    assert got == tuple(new)
    sent = [r for f in frames if f[0] == "new" for r in f[2]]
    assert sent == [new[0], new[5000], new[5001], new[-1]]
    assert sum(f[3] - f[2] for f in frames if f[0] == "old") == 10_000 - 4


def test_additions_removals_and_many_changes_rebuild_exactly() -> None:
    old = tuple(object() for _ in range(1_000))
    cases = [
        (*old[:10], object(), *old[10:]),  # one added
        old[:500] + old[501:],  # one removed
        tuple(reversed(old)),  # reordered
        tuple(object() if i % 2 else r for i, r in enumerate(old)),  # more changed than one frame holds
        (),
    ]
    assert sum(1 for i in range(1_000) if i % 2) > RESOURCES_PER_FRAME
    for new in cases:
        _, got = rebuilt(old, new)
        assert len(got) == len(new)
        assert all(a is b for a, b in zip(got, new, strict=True))
