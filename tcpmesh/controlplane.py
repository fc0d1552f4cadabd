"""The control plane: the accepted config, the ADS server that serves it, and reloads from the store.

A reload that finds any error keeps serving the last good config and records why the change was rejected;
nothing that is serving is ever replaced by a bad change.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcpmesh.metrics import Metrics
from tcpmesh.model.config import Config
from tcpmesh.model.problems import Problem
from tcpmesh.store import ConfigStore
from tcpmesh.translator import Proxy, TranslateOptions, translate_indexed
from tcpmesh.translator.index import Index, build_index
from tcpmesh.translator.proxy import parse_node_id
from tcpmesh.xds.server import XdsServer
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, Node

__all__ = ["ControlPlane", "Rejection", "proxy_from_node"]

log = logging.getLogger(__name__)


def proxy_from_node(node: Node) -> Proxy:
    """Role, namespace and labels as istiod reads them from the bootstrap node."""
    role, ip, _, id_namespace = parse_node_id(node.id)
    namespace = str(node.metadata.get("NAMESPACE") or id_namespace or "default")
    return Proxy(role=role, id=node.id, namespace=namespace, labels=tuple(sorted(node.labels.items())), ip=ip)


def proxy_group(node: Node) -> Hashable:
    """Proxies with the same role, namespace and labels get the same config: compute it once for all."""
    proxy = proxy_from_node(node)
    return (proxy.role, proxy.namespace, proxy.labels)


@dataclass(frozen=True, slots=True)
class Rejection:
    at: float
    problems: tuple[Problem, ...]


@dataclass
class _State:
    index: Index
    generation: int
    accepted_at: float
    changed_at: float
    rejection: Rejection | None = None
    resources: int = 0
    history: list[str] = field(default_factory=list)


class ControlPlane:
    def __init__(self, store: ConfigStore, options: TranslateOptions | None = None) -> None:
        self.store = store
        self.options = options or TranslateOptions()
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        now = time.time()
        self._state = _State(
            index=build_index(Config(), self.options), generation=0, accepted_at=now, changed_at=time.monotonic()
        )
        self.xds = XdsServer(self._generate, group_key=proxy_group, on_ack=self._on_ack)
        self.metrics = Metrics(connected=lambda: len(self.xds.status()))

    # -- config -----------------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self._state.index.config

    @property
    def generation(self) -> int:
        return self._state.generation

    @property
    def rejection(self) -> Rejection | None:
        return self._state.rejection

    def reload(self) -> tuple[bool, list[Problem]]:
        """Load the store; swap in the new config only if it has no error."""
        with self._reload_lock:
            return self._reload()

    def _reload(self) -> tuple[bool, list[Problem]]:
        config, problems = self.store.load()
        errors = [p for p in problems if p.is_error]
        for problem in problems:
            (log.error if problem.is_error else log.warning)("%s", problem)
        if errors:
            self._state.rejection = Rejection(time.time(), tuple(problems))
            self.metrics.reloads.labels("rejected").inc()
            self.metrics.config_errors.set(1)
            log.error(
                "config change rejected (%d errors); still serving generation %d", len(errors), self._state.generation
            )
            return False, problems
        self.metrics.config_errors.set(0)
        if config == self.config and self._state.generation > 0:
            self._state.rejection = None
            return True, problems
        index = build_index(config, self.options)
        with self._lock:
            self._state = _State(
                index=index,
                generation=self._state.generation + 1,
                accepted_at=time.time(),
                changed_at=time.monotonic(),
                resources=len(config),
            )
        self.metrics.reloads.labels("accepted").inc()
        log.info("config generation %d accepted: %d resources", self._state.generation, len(config))
        self.xds.config_changed()
        return True, problems

    def _generate(self, node: Node) -> Mapping[str, Sequence[Any]]:
        index = self._state.index
        start = time.perf_counter()
        resources = translate_indexed(index, proxy_from_node(node))
        self.metrics.translate_seconds.observe(time.perf_counter() - start)
        return {
            CLUSTER_TYPE: resources.clusters,
            ENDPOINT_TYPE: resources.endpoints,
            LISTENER_TYPE: resources.listeners,
        }

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

    async def watch(self, debounce_ms: int = 100, stop: asyncio.Event | None = None) -> None:
        """Reload after the directory has been quiet for ``debounce_ms`` (watchfiles batches events)."""
        from watchfiles import awatch

        directory: Path = self.store.directory
        async for _changes in awatch(
            directory, debounce=debounce_ms, step=20, stop_event=stop, watch_filter=_visible_yaml, recursive=False
        ):
            await asyncio.to_thread(self.reload)


def _visible_yaml(_change: Any, path: str) -> bool:
    name = Path(path).name
    return not name.startswith(".") and name.endswith((".yaml", ".yml"))
