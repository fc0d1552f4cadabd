"""The control plane: the accepted config, the publisher that turns it into snapshots, and the ADS server.

A reload that finds any error (in validation, or when the publisher translates and checks the snapshots) keeps
serving the last good config and records why the change was rejected; nothing that is serving is ever replaced
by a bad change. Flow: store → reload (validate) → accepted config → publisher (translate per group, off the
loop) → snapshots → XdsServer → streams.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tcpmesh.credential_status import SdsNames
from tcpmesh.metrics import Metrics
from tcpmesh.model.config import Config
from tcpmesh.model.problems import Problem
from tcpmesh.publisher import Publisher, TranslatorFactory, WorkerKind, proxy_from_node, proxy_group
from tcpmesh.saved_snapshots import SnapshotFile
from tcpmesh.store import ConfigStore, store_reader
from tcpmesh.translator import TranslateOptions
from tcpmesh.translator.incremental import IncrementalTranslator
from tcpmesh.xds.server import DEFAULT_FLOW_TIMEOUT, DEFAULT_MAX_CONCURRENT_PUSHES, XdsServer

__all__ = [
    "MAX_RESOURCES",
    "ControlPlane",
    "Debouncer",
    "Rejection",
    "XdsOptions",
    "proxy_from_node",
    "proxy_group",
]

MAX_RESOURCES = 20_000
"""Config resources one control plane accepts; more is refused with a clear error instead of slowly served."""

APPLIED_WAIT = 10.0
"""How long a reload (off the loop) waits for the server to take the published snapshots before returning."""


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class XdsOptions:
    flow_timeout: float | None = DEFAULT_FLOW_TIMEOUT
    max_concurrent_pushes: int = DEFAULT_MAX_CONCURRENT_PUSHES
    make_before_break: bool = True


class Debouncer:
    """istiod's debounce: act once events stop for `quiet` seconds, or `max_delay` after the first one."""

    def __init__(self, quiet: float = 0.1, max_delay: float = 10.0) -> None:
        self.quiet = quiet
        self.max_delay = max(max_delay, quiet)
        self._first: float | None = None
        self._last = 0.0
        self.events = 0

    def event(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now
        self.events += 1

    @property
    def first_at(self) -> float | None:
        """When the first event of the pending burst arrived."""
        return self._first

    def due_in(self, now: float) -> float | None:
        """Seconds until the debounced action is due (0: now); None when nothing is pending."""
        if self._first is None:
            return None
        return max(0.0, min(self._last + self.quiet, self._first + self.max_delay) - now)

    def fire(self) -> int:
        """Mark the pending events handled; returns how many there were."""
        count, self._first, self.events = self.events, None, 0
        return count


@dataclass(frozen=True, slots=True)
class Rejection:
    at: float
    problems: tuple[Problem, ...]
    sequence: int = 0
    """The publisher's sequence when it was found (`late`: the publish whose config a group failed for)."""
    late: bool = False
    """Found outside a reload: a proxy group translated later (it connected, or was held at a restart)."""


@dataclass(frozen=True, slots=True)
class _State:
    config: Config
    generation: int


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class ControlPlane:
    def __init__(
        self,
        store: ConfigStore,
        options: TranslateOptions | None = None,
        xds_options: XdsOptions | None = None,
        *,
        max_resources: int = MAX_RESOURCES,
        translators: TranslatorFactory | None = None,
        worker: WorkerKind = "process",
        saved: SnapshotFile | None = None,
    ) -> None:
        """`translators` makes the per-group translator (tests wrap IncrementalTranslator to inject faults);
        `worker`: where translation runs (publisher.py; "process" needs a picklable `translators`); `saved`:
        where the published snapshots are saved, and served from on the next start (saved_snapshots.py)."""
        self.store = store
        self.options = options or TranslateOptions()
        self.xds_options = xds = xds_options or XdsOptions()
        self.max_resources = max_resources
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._state = _State(config=Config(), generation=0)
        self._rejection: Rejection | None = None
        self.metrics = Metrics(connected=lambda: len(self.xds.status()), statuses=lambda: self.xds.status())
        self.xds = XdsServer(
            group_key=proxy_group,
            on_ack=self._on_ack,
            make_before_break=xds.make_before_break,
            flow_timeout=xds.flow_timeout,
            max_concurrent_pushes=xds.max_concurrent_pushes,
            on_push=self.metrics.on_push,
        )
        self.publisher = Publisher(
            self.xds,
            self.options,
            translators=translators or IncrementalTranslator,
            source=str(store.directory),
            on_rejected=self._reject_later,
            on_translated=self.metrics.translate_seconds.observe,
            worker=worker,
            saved=saved,
        )
        self.restored_groups = 0
        """Groups served at start from saved snapshots (`restore`)."""
        self.sds_names = SdsNames()
        """Memo of the status page's SDS names per served resource (credential_status.py)."""
        self.xds.on_group_wanted = self.publisher.want
        self.xds.on_group_released = self.publisher.release

    def close(self) -> None:
        """Stop the publisher's worker (the server is stopped by its own `stop`)."""
        self.publisher.close()

    # -- config -----------------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self._state.config

    @property
    def generation(self) -> int:
        return self._state.generation

    @property
    def rejection(self) -> Rejection | None:
        return self._rejection

    def restore(self) -> int:
        """Before the ADS server starts: hand it the snapshots saved when this store's content was last served
        (saved_snapshots.py), found by the records' digest before anything is parsed; `reload` then accepts the
        config as usual and translates it in the background. Returns the groups restored (0: none saved for
        this content, code and options). Either way the translation worker starts reading the store now, in
        parallel with `reload`'s read, instead of being sent the config after it, and the groups the server
        wants before `reload` has accepted a config wait for it (translated meanwhile for the worker's read).
        """
        reader = store_reader(self.store)
        if reader is not None:
            self.publisher.prefetch(reader)
        if self.publisher.saves:
            self.restored_groups = self.publisher.restore(self.store.content_key())
        self.publisher.hold()
        self.metrics.restored_groups.set(self.restored_groups)
        return self.restored_groups

    def serve_unaccepted(self) -> None:
        """The store's config was not accepted at the start: the groups that connected meanwhile are served
        what there is (the saved snapshots when restored; else an empty config), as any that connect later."""
        if not self.restored_groups:
            self.publisher.release_held()

    def reload(self) -> tuple[bool, list[Problem]]:
        """Load the store; swap in the new config only if it has no error and translates to consistent
        snapshots. Call it off the event loop (it blocks until the publisher is done)."""
        with self._reload_lock:
            return self._reload()

    def _reload(self) -> tuple[bool, list[Problem]]:
        config, problems, key = self.store.load_keyed()
        size = len(config)
        if size > self.max_resources:
            problems = [
                *problems,
                Problem(file=self.store.location, message=f"{size} resources; the limit is {self.max_resources}"),
            ]
        for problem in problems:
            (log.error if problem.is_error else log.warning)("%s", problem)
        if any(p.is_error for p in problems):
            self._reject(problems)
            return False, problems
        if config == self.config and self._state.generation > 0:
            self._accepted(self.publisher.sequence)
            return True, problems
        changed_at = time.monotonic()
        published = self.publisher.publish(config, changed_at=changed_at, key=key)
        if published.problems:
            for problem in published.problems:
                log.error("%s", problem)
            problems = [*problems, *published.problems]
            self._reject(problems)
            return False, problems
        with self._lock:
            self._state = _State(config=config, generation=self._state.generation + 1)
        self._accepted(published.sequence)
        self.metrics.reloads.labels("accepted").inc()
        log.info("config generation %d accepted: %d resources", self._state.generation, size)
        if published.applied is not None and not _on_event_loop():
            # Return once the server serves it, so a caller that reads status next sees the change in flight.
            concurrent.futures.wait([published.applied], timeout=APPLIED_WAIT)
        return True, problems

    def _accepted(self, sequence: int) -> None:
        """The config of publish `sequence` serves: clear a rejection of an earlier change, or of a group's
        translation for an earlier config. A group that failed for this very config (held at a restart and
        translated once it was accepted, which may finish before this) still fails: that rejection stays."""
        with self._lock:
            r = self._rejection
            if r is not None and (not r.late or r.sequence < sequence):
                self._rejection = None
                self.metrics.set_rejected(())

    def _reject(self, problems: Sequence[Problem]) -> None:
        with self._lock:
            self._rejection = Rejection(time.time(), tuple(problems), self.publisher.sequence)
            self.metrics.set_rejected([p for p in problems if p.is_error])
        self.metrics.reloads.labels("rejected").inc()
        log.error(
            "config change rejected (%d errors); still serving generation %d",
            sum(p.is_error for p in problems),
            self._state.generation,
        )

    def _reject_later(self, problems: tuple[Problem, ...], sequence: int) -> None:
        """A proxy group that connected later cannot be translated for publish `sequence`'s config (the
        publisher's thread)."""
        for problem in problems:
            log.error("%s", problem)
        with self._lock:
            self._rejection = Rejection(time.time(), problems, sequence, late=True)
            self.metrics.set_rejected(problems)

    def _on_ack(self, event: Any) -> None:
        self.metrics.on_ack(event)
        if event.error is not None:
            log.error(
                "proxy %s rejected %s version %s: %s",
                event.node_id,
                event.type_url.rsplit(".", 1)[-1],
                event.version,
                event.error,
            )

    # -- watching ---------------------------------------------------------------------------------

    async def watch(
        self, quiet_ms: int = 100, stop: asyncio.Event | None = None, *, max_delay_ms: int = 10_000
    ) -> None:
        """Reload once the store has been quiet for `quiet_ms`, or `max_delay_ms` after the first change of a
        burst (istiod's PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX), so a steady trickle cannot starve reloads."""
        debouncer = Debouncer(quiet_ms / 1000, max_delay_ms / 1000)
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def events() -> None:
            async for _revision in self.store.changes(stop):
                debouncer.event(loop.time())
                wake.set()

        watcher = asyncio.create_task(events(), name="config-watch")
        try:
            while not watcher.done():
                due = debouncer.due_in(loop.time())
                wake.clear()
                if due is None or due > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=due if due is not None else 1.0)
                    continue
                started = debouncer.first_at or loop.time()
                count = debouncer.fire()
                self.metrics.debounce_seconds.observe(loop.time() - started)
                log.debug("reloading after %d change batches", count)
                await asyncio.to_thread(self.reload)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
