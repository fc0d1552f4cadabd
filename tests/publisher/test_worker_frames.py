"""The frames that send a changed kind to the translation worker rebuild it exactly, reusing the worker's objects
for the unchanged runs (the worker's translator then sees the same objects and does no work for them)."""

from __future__ import annotations

from typing import Any

from tcpmesh.config_frames import RESOURCES_PER_FRAME, ConfigAssembly, config_frames
from tcpmesh.model.config import Config


def rebuilt(
    old: tuple[Any, ...], new: tuple[Any, ...], moved: tuple[int, ...] | None = None
) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    """What the worker holds after the frames (applied by its ConfigAssembly), and the frames. The lineage it
    learns names, if anything, exactly the positions that hold another object."""
    frames = list(config_frames("virtual_services", old, new, moved))
    assembly = ConfigAssembly(Config(virtual_services=old))
    for frame in [("begin", "virtual_services"), *frames, ("end", "virtual_services")]:
        assembly.take(frame)
    config = assembly.config()
    got = config.virtual_services
    known = config.moved(old, got)
    if known is not None:
        assert list(known) == [i for i, (a, b) in enumerate(zip(old, got, strict=True)) if a is not b]
    return frames, got


def test_an_edit_in_place_sends_the_changed_resources_only() -> None:
    old = tuple(object() for _ in range(10_000))
    new = list(old)
    new[0], new[5000], new[5001], new[-1] = object(), object(), object(), object()
    for moved in (None, (0, 5000, 5001, 9999)):  # found by comparing, or told by the config's lineage
        frames, got = rebuilt(old, tuple(new), moved)
        assert got == tuple(new)
        sent = [r for f in frames if f[0] == "new" for r in f[2]]
        assert sent == [new[0], new[5000], new[5001], new[-1]]
        assert sum(f[3] - f[2] for f in frames if f[0] == "old") == 10_000 - 4
        # The worker learns the positions from the frames: its translator compares nothing.
        assembly = ConfigAssembly(Config(virtual_services=old))
        for frame in [("begin", "virtual_services"), *frames, ("end", "virtual_services")]:
            assembly.take(frame)
        config = assembly.config()
        assert config.virtual_services == tuple(new)
        assert config.moved(old, config.virtual_services) == (0, 5000, 5001, 9999)


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
        if len(new) != len(old):
            assembly = ConfigAssembly(Config(virtual_services=old))
            for frame in [("begin", "virtual_services"), *config_frames("virtual_services", old, new),
                          ("end", "virtual_services")]:  # fmt: skip
                assembly.take(frame)
            config = assembly.config()
            assert config.moved(old, config.virtual_services) is None  # not an edit in place: compare
