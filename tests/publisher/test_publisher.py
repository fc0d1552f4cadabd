"""The publisher on the serving path: a real ControlPlane (store, publisher, grpc.aio ADS server) and a raw ADS
client on loopback. Faults come from wrapping the translator (tests/faults.py), never from production hooks."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.controlplane import ControlPlane
from tcpmesh.httpapi import status_json
from tcpmesh.publisher import WorkerKind
from tcpmesh.snapshot_check import check_snapshot
from tcpmesh.store import import_paths, open_store
from tcpmesh.translation import build_snapshot
from tcpmesh.translator import Proxy, TranslateOptions
from tcpmesh.xds.cache import SnapshotCache
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, Node
from tests import faults
from tests.references import cluster_references, clusters_named
from tests.xds.ads_testkit import AdsClient, ack, cla, cluster, eventually, listener, names_in, request, run

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = Node(
    id="router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local",
    metadata={"LABELS": {"istio": "ingressgateway", "app": "istio-ingressgateway"}},
)
V2 = (ROOT / "samples" / "tcp-echo" / "tcp-echo-all-v1.yaml").read_text().replace("subset: v1", "subset: v2")


class Faults:
    """The fault the wrapped translators inject now (None: translate faithfully), as marker files in a directory
    (tests/faults.py), so translators in the publisher's worker process see it too."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(exist_ok=True)
        self.translators = 0

    @property
    def now(self) -> str | None:
        return next((m for m in faults.MARKERS if (self.directory / m).exists()), None)

    @now.setter
    def now(self, marker: str | None) -> None:
        for m in faults.MARKERS:
            (self.directory / m).unlink(missing_ok=True)
        if marker is not None:
            (self.directory / marker).touch()

    def make(self, proxy: Proxy, options: TranslateOptions) -> faults.FaultyTranslator:
        """In-process (thread worker): counts the translators made."""
        self.translators += 1
        return faults.FaultyTranslator(proxy, options, config_dir=self.directory)


WORKERS = pytest.mark.parametrize("worker", ["thread", "process"])


def control_plane(tmp_path: Path, fault: Faults, worker: WorkerKind = "thread") -> ControlPlane:
    store = open_store(None, tmp_path / "state")
    seeded = import_paths(store, [ROOT / "samples" / "tcp-echo"])
    assert seeded.ok, seeded.problems
    # Inline weights: the faults and assertions look at the listener's tcp_proxy (ECDS is covered end to end).
    # The worker process gets a factory that pickles; the thread worker one that counts.
    translators = fault.make if worker == "thread" else faults.faulty_translators(fault.directory)
    return ControlPlane(store, TranslateOptions(inline_weights=True), translators=translators, worker=worker)


async def sync(c: AdsClient) -> dict[str, Any]:
    """CDS, EDS for the clusters, LDS, each ACKed: what Envoy does on connect."""
    got = {}
    c.send(request(CLUSTER_TYPE, n=GATEWAY))
    got[CLUSTER_TYPE] = await c.recv()
    eds = tuple(names_in(got[CLUSTER_TYPE]))
    c.send(ack(got[CLUSTER_TYPE]), request(ENDPOINT_TYPE, eds))
    got[ENDPOINT_TYPE] = await c.recv()
    c.send(ack(got[ENDPOINT_TYPE], eds), request(LISTENER_TYPE))
    got[LISTENER_TYPE] = await c.recv()
    c.send(ack(got[LISTENER_TYPE]))
    return got


def routed_to(lds: Any) -> set[str]:
    from envoy.config.listener.v3 import listener_pb2

    out: set[str] = set()
    for any_ in lds.resources:
        m = listener_pb2.Listener()
        any_.Unpack(m)
        out |= clusters_named(m)
    return out


async def serving(
    tmp_path: Path, fault: Faults, worker: WorkerKind = "thread"
) -> tuple[ControlPlane, AdsClient, dict[str, Any]]:
    cp = control_plane(tmp_path, fault, worker)
    accepted, problems = await asyncio.to_thread(cp.reload)
    assert accepted, problems
    port = await cp.xds.start()
    c = AdsClient(port)
    got = await sync(c)
    return cp, c, got


@WORKERS
def test_a_new_group_is_asked_for_and_published_once(tmp_path: Path, worker: WorkerKind) -> None:
    fault = Faults(tmp_path / "faults")

    async def body() -> None:
        cp, c, got = await serving(tmp_path, fault, worker)
        try:
            assert routed_to(got[LISTENER_TYPE]) == {"outbound|9000|v1|tcp-echo.default.svc.cluster.local"}
            assert fault.translators == (1 if worker == "thread" else 0)  # one group, one translator
            assert cp.store.apply(V2, source="tcp-echo-all-v1.yaml").ok
            accepted, _ = await asyncio.to_thread(cp.reload)
            assert accepted
            lds = await c.recv()  # only the listener changed: no CDS or EDS push
            assert lds.type_url == LISTENER_TYPE
            assert routed_to(lds) == {"outbound|9000|v2|tcp-echo.default.svc.cluster.local"}
            c.send(ack(lds))
            await c.quiet()
        finally:
            await c.close()
            await cp.xds.stop(0)
            cp.close()

    run(body())


def _rejected_then_fixed(tmp_path: Path, worker: WorkerKind, mode: str, expect: str, kind: str = "") -> None:
    fault = Faults(tmp_path / "faults")

    async def body() -> None:
        cp, c, _ = await serving(tmp_path, fault, worker)
        try:
            generation = cp.generation
            fault.now = mode
            assert cp.store.apply(V2, source="tcp-echo-all-v1.yaml").ok
            accepted, problems = await asyncio.to_thread(cp.reload)
            assert not accepted
            assert any(expect in p.message for p in problems), problems
            if kind:
                assert any(p.kind == kind for p in problems), problems
            # The last good snapshot keeps serving: nothing is pushed and the stream stays open.
            await c.quiet()
            assert cp.generation == generation
            assert len(cp.xds.status()) == 1
            status = status_json(cp)
            assert status["rejected"] is not None
            assert expect in str(status["rejected"]["problems"])
            metrics = cp.metrics.render().decode()
            assert "tcpmesh_config_rejected 1.0" in metrics
            if kind:
                assert f'tcpmesh_config_rejected_resources{{kind="{kind}"' in metrics
            # Without the fault the same change goes through to the open stream.
            fault.now = None
            accepted, problems = await asyncio.to_thread(cp.reload)
            assert accepted, problems
            lds = await c.recv()
            assert routed_to(lds) == {"outbound|9000|v2|tcp-echo.default.svc.cluster.local"}
            assert status_json(cp)["rejected"] is None
            assert "tcpmesh_config_rejected 0.0" in cp.metrics.render().decode()
        finally:
            await c.close()
            await cp.xds.stop(0)
            cp.close()

    run(body())


@WORKERS
def test_a_translator_exception_is_a_rejected_change(tmp_path: Path, worker: WorkerKind) -> None:
    _rejected_then_fixed(tmp_path, worker, faults.FAIL_TRANSLATE, "injected translator fault")


def test_a_worker_that_dies_in_every_try_rejects_the_change(tmp_path: Path) -> None:
    """The worker process exits in the change's translation, and again in the retry's: a rejected change, the
    last good snapshot serving, the stream open; once it translates again the same change goes through."""
    _rejected_then_fixed(tmp_path, "process", faults.EXIT, "the translation worker process failed")


def test_a_worker_that_dies_during_a_change_is_restarted_and_the_change_accepted(tmp_path: Path) -> None:
    """Killed mid-change (out of memory, say): a new worker replays the accepted config and the group, and the
    change is translated there, accepted and pushed once; the restart itself pushes nothing."""
    fault = Faults(tmp_path / "faults")

    async def body() -> None:
        cp, c, _ = await serving(tmp_path, fault, "process")
        try:
            generation = cp.generation
            exit_once = fault.directory / faults.EXIT_ONCE
            exit_once.touch()
            assert cp.store.apply(V2, source="tcp-echo-all-v1.yaml").ok
            accepted, problems = await asyncio.to_thread(cp.reload)
            assert accepted, problems
            assert not exit_once.exists()  # the worker did exit during the change
            assert cp.generation == generation + 1
            lds = await c.recv()
            assert lds.type_url == LISTENER_TYPE
            assert routed_to(lds) == {"outbound|9000|v2|tcp-echo.default.svc.cluster.local"}
            c.send(ack(lds))
            await c.quiet()
            assert status_json(cp)["rejected"] is None
        finally:
            await c.close()
            await cp.xds.stop(0)
            cp.close()

    run(body())


@WORKERS
def test_an_inconsistent_snapshot_is_a_rejected_change(tmp_path: Path, worker: WorkerKind) -> None:
    _rejected_then_fixed(tmp_path, worker, faults.DANGLE, f"cluster {faults.MISSING_CLUSTER!r}", kind="Listener")


@WORKERS
def test_a_group_that_cannot_be_translated_waits_and_says_why(tmp_path: Path, worker: WorkerKind) -> None:
    fault = Faults(tmp_path / "faults")

    async def body() -> None:
        cp = control_plane(tmp_path, fault, worker)
        assert (await asyncio.to_thread(cp.reload))[0]
        fault.now = faults.FAIL_TRANSLATE
        port = await cp.xds.start()
        c = AdsClient(port)
        try:
            c.send(request(CLUSTER_TYPE, n=GATEWAY))
            await eventually(lambda: cp.rejection is not None)
            await c.quiet()  # nothing to serve, and the stream is not closed
            assert len(cp.xds.status()) == 1
            fault.now = None
            assert cp.store.apply(V2, source="tcp-echo-all-v1.yaml").ok
            assert (await asyncio.to_thread(cp.reload))[0]
            cds = await c.recv()  # the next accepted change serves the waiting stream
            assert cds.type_url == CLUSTER_TYPE
            # That change translated the group: its rejection (for the earlier config) is gone.
            assert cp.rejection is None
            assert status_json(cp)["rejected"] is None
        finally:
            await c.close()
            await cp.xds.stop(0)
            cp.close()

    run(body())


def test_snapshot_check_follows_go_control_plane_consistent() -> None:
    cache = SnapshotCache()
    good = {
        CLUSTER_TYPE: [cluster("c1")],
        ENDPOINT_TYPE: [cla("c1", "127.0.0.1")],
        LISTENER_TYPE: [listener("l1", 15001, "c1"), listener("l2", 15002, "outbound|80||unknown.example")],
    }
    ok = cache.build(good, cluster_references(good))
    assert check_snapshot(ok) == []  # an Istio route to an undefined host may dangle
    broken = {
        CLUSTER_TYPE: [cluster("c1")],
        ENDPOINT_TYPE: [cla("c2", "127.0.0.1")],
        LISTENER_TYPE: [listener("l1", 15001, "BlackHoleCluster")],
    }
    bad = cache.build(broken, cluster_references(broken))
    found = {(i.kind, i.name) for i in check_snapshot(bad)}
    assert found == {("Cluster", "c1"), ("ClusterLoadAssignment", "c2"), ("Listener", "l1")}


def test_snapshot_check_follows_ecds_configs() -> None:
    """A listener names its tcp_proxy by ECDS: the config must be served, and its clusters must exist."""
    from tcpmesh.model.config import load_config
    from tcpmesh.translator import translate

    config, _ = load_config([ROOT / "samples" / "tcp-echo"])
    res = translate(config, Proxy.gateway())
    cache = SnapshotCache()
    assert check_snapshot(build_snapshot(cache, res)) == []
    # The listeners still name (and the translator reported) both configs.
    missing_config = build_snapshot(cache, dataclasses.replace(res, extension_configs=()))
    assert [(i.kind, i.message) for i in check_snapshot(missing_config)] == [
        ("Listener", "names filter config '0.0.0.0_31400~drain', which is not served"),
        ("Listener", "names filter config '0.0.0.0_31400~tcp_proxy', which is not served"),
    ]
    drain, tcp_proxy = res.extension_configs
    bad_config = type(tcp_proxy)()
    bad_config.CopyFrom(tcp_proxy)
    from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

    tcp = tcp_proxy_pb2.TcpProxy()
    bad_config.typed_config.Unpack(tcp)
    tcp.cluster = "InternalNoSuchCluster"
    bad_config.typed_config.Pack(tcp)
    refs = {**res.references, "extension_configs": {bad_config.name: {"clusters": frozenset({tcp.cluster})}}}
    dangling = build_snapshot(cache, dataclasses.replace(res, extension_configs=(drain, bad_config), references=refs))
    assert [(i.kind, i.name) for i in check_snapshot(dangling)] == [("TypedExtensionConfig", "0.0.0.0_31400~tcp_proxy")]


def test_a_change_to_most_resources_is_translated_afresh(tmp_path: Path) -> None:
    """The IncrementalTranslator patches per changed resource: when most changed, one full translation is
    cheaper, so the publisher starts the group's translator over (and the output is the same either way)."""

    from tcpmesh.translation import _mostly_changed

    store = open_store(None, tmp_path / "state")
    assert import_paths(store, [ROOT / "samples" / "tcp-echo"]).ok
    config, _ = store.load()
    store.close()
    one_edit = dataclasses.replace(
        config, virtual_services=tuple(dataclasses.replace(vs, hosts=("a.example",)) for vs in config.virtual_services)
    )
    assert not _mostly_changed(config, config)
    assert not _mostly_changed(config, one_edit)

    def renumbered(items: Any) -> Any:
        return tuple(dataclasses.replace(r, meta=dataclasses.replace(r.meta, order=r.meta.order + 1)) for r in items)

    first = config.virtual_services[0]
    copies = tuple(
        dataclasses.replace(first, meta=dataclasses.replace(first.meta, name=f"svc-{i}")) for i in range(100)
    )
    big = dataclasses.replace(config, virtual_services=copies)
    assert _mostly_changed(big, dataclasses.replace(big, virtual_services=renumbered(big.virtual_services)))


def test_snapshot_check_follows_rds_route_configs() -> None:
    """An HTTP listener names its RouteConfiguration by RDS: it must be served, and its clusters must exist."""
    from tcpmesh.commands.offline import proxy_from_args
    from tcpmesh.model.config import load_config
    from tcpmesh.translator import translate

    sample = ROOT / "samples" / "bookinfo-reviews"
    config, _ = load_config([sample / "reviews-services.yaml", sample / "reviews-gateway.yaml"])
    res = translate(config, proxy_from_args("gateway", None, None))
    cache = SnapshotCache()
    assert check_snapshot(build_snapshot(cache, res)) == []
    missing = build_snapshot(cache, dataclasses.replace(res, routes=()))
    assert [(i.kind, i.message) for i in check_snapshot(missing)] == [
        ("Listener", "names route config 'http.8080', which is not served")
    ]
    (route_config,) = res.routes
    bad = type(route_config)()
    bad.CopyFrom(route_config)
    bad.virtual_hosts[0].routes[0].route.cluster = "InternalNoSuchCluster"
    refs = {**res.references, "routes": {bad.name: {"clusters": frozenset(clusters_named(bad))}}}
    dangling = build_snapshot(cache, dataclasses.replace(res, routes=(bad,), references=refs))
    assert [(i.kind, i.name) for i in check_snapshot(dangling)] == [("RouteConfiguration", "http.8080")]
