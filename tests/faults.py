"""Faults injected by wrapping the publisher's translator: what production code no longer carries as hooks.

`FaultyTranslator` wraps IncrementalTranslator and, while a marker file exists in the state directory,
breaks its output: `BREAK_WEIGHTS` gives every tcp_proxy a weight-0 split (valid to us, NACKed by Envoy) and
`FAIL_TRANSLATE` raises as a translator bug would, and `DANGLE` sends every tcp_proxy to a cluster that does not
exist (which the publisher's snapshot check must refuse). Run as a script it is `tcpmesh serve` with that translator,
so end-to-end tests can run it as the control-plane child process:

    python tests/faults.py serve --config-dir ... (the usual serve options)
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "tests":
    # Run as a script: import from the checkout's root, not tests/ (whose xds/ would shadow the xds protos).
    sys.path[0] = str(ROOT)

from tcpmesh.model.config import Config  # noqa: E402
from tcpmesh.translator import EnvoyResources, Proxy, TranslateOptions  # noqa: E402
from tcpmesh.translator.encoded import as_message  # noqa: E402
from tcpmesh.translator.incremental import IncrementalTranslator  # noqa: E402
from tcpmesh.translator.tcp_proxy import TCP_PROXY_FILTER  # noqa: E402
from tests.references import clusters_named  # noqa: E402

BREAK_WEIGHTS = ".fault-break-weights"
FAIL_TRANSLATE = ".fault-fail-translate"
DANGLE = ".fault-dangling-cluster"
EXIT = ".fault-exit"
"""The translating process exits (only ever used with the worker process): a worker killed mid-change."""
EXIT_ONCE = ".fault-exit-once"
"""The same, once: the marker is removed as the process exits."""
MARKERS = (FAIL_TRANSLATE, BREAK_WEIGHTS, DANGLE, EXIT)
MISSING_CLUSTER = "InternalNoSuchCluster"


def _rewrite_tcp_proxies(listeners: tuple[Any, ...], rewrite: Callable[[Any], None]) -> tuple[Any, ...]:
    from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

    out = []
    for listener in listeners:
        source = as_message(listener)  # a listener may be Encoded (translator/encoded.py)
        copy = type(source)()
        copy.CopyFrom(source)
        for chain in copy.filter_chains:
            for f in chain.filters:
                proxy = tcp_proxy_pb2.TcpProxy()
                if f.name == TCP_PROXY_FILTER and f.typed_config.Unpack(proxy):
                    rewrite(proxy)
                    f.typed_config.Pack(proxy)
        out.append(copy)
    return tuple(out)


def _reported(out: EnvoyResources, listeners: tuple[Any, ...]) -> dict[str, Mapping[str, Any]]:
    """The references a translator emitting the broken `listeners` would report: each listener's clusters are
    what its rewritten tcp_proxies send to (the faulty output keeps no filter or route configs)."""
    by_name: dict[str, Mapping[str, frozenset[str]]] = {}
    for listener in listeners:
        refs = {**out.references.get("listeners", {}).get(listener.name, {})}
        refs.pop("clusters", None)
        if clusters := clusters_named(listener):
            refs["clusters"] = frozenset(clusters)
        if refs:
            by_name[listener.name] = refs
    return {"listeners": by_name, "extension_configs": {}, "routes": {}}


def _weight_zero(proxy: Any) -> None:
    target = proxy.cluster or (proxy.weighted_clusters.clusters[0].name if proxy.weighted_clusters.clusters else "")
    proxy.ClearField("cluster")
    proxy.weighted_clusters.ClearField("clusters")
    proxy.weighted_clusters.clusters.add(name=target, weight=0)


def _to_missing(proxy: Any) -> None:
    proxy.ClearField("weighted_clusters")
    proxy.cluster = MISSING_CLUSTER


def break_weights(listeners: tuple[Any, ...]) -> tuple[Any, ...]:
    """Every tcp_proxy gets a weight-0 split, which our validation never emits and Envoy NACKs."""
    return _rewrite_tcp_proxies(listeners, _weight_zero)


def dangle(listeners: tuple[Any, ...]) -> tuple[Any, ...]:
    """Every tcp_proxy sends to a cluster no snapshot has (and that Istio semantics never leaves dangling)."""
    return _rewrite_tcp_proxies(listeners, _to_missing)


_BREAKERS = {BREAK_WEIGHTS: break_weights, DANGLE: dangle}


class FaultyTranslator:
    """IncrementalTranslator, broken on demand by marker files in `config_dir` (or by `fault()`)."""

    def __init__(
        self, proxy: Proxy, options: TranslateOptions, *, config_dir: Path | None = None,
        fault: Callable[[], str | None] | None = None,
    ) -> None:  # fmt: skip
        self._inner = IncrementalTranslator(proxy, options)
        self._config_dir = config_dir
        self._fault = fault
        self._broken: dict[str, dict[str, bytes]] | None = None

    def _active(self) -> str | None:
        if self._fault is not None:
            return self._fault()
        if self._config_dir is None:
            return None
        for marker in MARKERS:
            if (self._config_dir / marker).exists():
                return marker
        return None

    def update(self, config: Config) -> EnvoyResources:
        if self._config_dir is not None and (self._config_dir / EXIT_ONCE).exists():
            (self._config_dir / EXIT_ONCE).unlink()
            os._exit(3)
        fault = self._active()
        if fault == EXIT:
            os._exit(3)
        if fault == FAIL_TRANSLATE:
            raise ValueError("injected translator fault")
        out = self._inner.update(config)
        self._broken = None
        breaker = _BREAKERS.get(fault or "")
        if breaker is not None:
            listeners = breaker(out.listeners)
            self._broken = {"listeners": {m.name: m.SerializeToString(deterministic=True) for m in listeners}}
            out = EnvoyResources(
                listeners=listeners,
                clusters=out.clusters,
                endpoints=out.endpoints,
                references=_reported(out, listeners),
            )
        return out

    def serialized(self) -> Mapping[Any, Mapping[str, bytes]]:
        data = dict(self._inner.serialized())
        if self._broken is not None:
            data.update(self._broken)
        return data


def faulty_translators(config_dir: Path) -> Callable[[Proxy, TranslateOptions], FaultyTranslator]:
    """A factory that pickles (by reference to this module), so it runs in the publisher's worker process."""
    return functools.partial(FaultyTranslator, config_dir=config_dir)


def main(argv: list[str]) -> int:
    import argparse
    import asyncio
    import logging

    from tcpmesh.commands import serve
    from tests.faults import faulty_translators  # this module by its importable name, for the worker to unpickle

    parser = argparse.ArgumentParser(prog="faults.py")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_arguments(sub.add_parser("serve"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve.serve(args, translators=faulty_translators(args.state_dir)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
