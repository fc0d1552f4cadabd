"""Make-before-break and flow control in the sans-I/O streams, SotW and delta, against a simulated Envoy.

The simulated client applies responses in order like Envoy's ADS mux: CDS replaces (SotW) or patches (delta) its
clusters, a cluster change makes it (re)subscribe endpoints, and every response is ACKed. After each applied
response, every cluster a held listener names must be held with its endpoints: what tcp_proxy needs to not fail
a connection (xds_protocol.rst, "Eventual consistency considerations").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpmesh.xds.cache import Snapshot, SnapshotCache
from tcpmesh.xds.delta import DeltaStream
from tcpmesh.xds.sotw import SotwStream
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from tests.references import cluster_references, clusters_named
from tests.xds.ads_testkit import cla, cluster, node

CACHE = SnapshotCache()
N = node(app="a")
POOL = ("c0", "c1", "c2", "c3", "c4")
REJECTED = "c4"  # the simulated Envoy NACKs any listener naming this cluster


def weighted_listener(names: Sequence[str], port: int = 15000) -> Message:
    lst = listener_pb2.Listener(name="l0")
    sa = lst.address.socket_address
    sa.address, sa.port_value = "127.0.0.1", port
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix="l0")
    if len(names) == 1:
        proxy.cluster = names[0]
    else:
        proxy.weighted_clusters.clusters.extend(
            tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=n, weight=1) for n in names
        )
    lst.filter_chains.add().filters.add(name="envoy.filters.network.tcp_proxy").typed_config.Pack(proxy)
    return lst


def config(routes: Sequence[str], extra: Sequence[str] = (), timeout: int = 1) -> Snapshot:
    clusters = sorted({*routes, *extra})
    resources = {
        CLUSTER_TYPE: [cluster(c, timeout_s=timeout) for c in clusters],
        ENDPOINT_TYPE: [cla(c, "127.0.1.1") for c in clusters],
        LISTENER_TYPE: [weighted_listener(sorted(routes))],
    }
    return CACHE.build(resources, cluster_references(resources))


def _unpack(any_: Any, kind: type[Message]) -> Any:
    m = kind()
    any_.Unpack(m)
    return m


class FakeEnvoy:
    """What a proxy holds, updated from responses in arrival order; produces the requests Envoy would send."""

    def __init__(self, delta: bool) -> None:
        self.delta = delta
        self.clusters: dict[str, Any] = {}
        self.endpoints: dict[str, Any] = {}
        self.listeners: dict[str, Any] = {}
        self.nonces: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.eds_names: set[str] = set()
        self.nacks = 0

    def first_requests(self) -> list[Any]:
        return [self._req(CLUSTER_TYPE, first=True), self._req(LISTENER_TYPE)]

    def _req(self, type_url: str, names: Sequence[str] = (), *, first: bool = False, error: str = "") -> Any:
        if self.delta:
            r = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, response_nonce=self.nonces.get(type_url, ""))
        else:
            r = discovery_pb2.DiscoveryRequest(
                type_url=type_url,
                resource_names=list(names),
                version_info=self.versions.get(type_url, ""),
                response_nonce=self.nonces.get(type_url, ""),
            )
        if first:
            r.node.CopyFrom(N.to_proto())
        if error:
            r.error_detail.message = error
        return r

    def apply(self, resp: Any) -> list[Any]:
        t = resp.type_url
        self.nonces[t] = resp.nonce
        kind: type[Message] = {
            CLUSTER_TYPE: cluster_pb2.Cluster,
            ENDPOINT_TYPE: endpoint_pb2.ClusterLoadAssignment,
            LISTENER_TYPE: listener_pb2.Listener,
        }[t]
        if self.delta:
            items = {r.name: _unpack(r.resource, kind) for r in resp.resources}
            removed = set(resp.removed_resources)
        else:
            msgs = [_unpack(a, kind) for a in resp.resources]
            items = {(m.cluster_name if t == ENDPOINT_TYPE else m.name): m for m in msgs}
            removed = set()
        if t == LISTENER_TYPE and any(REJECTED in clusters_named(m) for m in items.values()):
            self.nacks += 1
            return [self._req(t, error="weight rejected")]
        store = {CLUSTER_TYPE: self.clusters, ENDPOINT_TYPE: self.endpoints, LISTENER_TYPE: self.listeners}[t]
        if not self.delta and t != ENDPOINT_TYPE:
            store.clear()  # SotW LDS/CDS are full state
        for name in removed:
            store.pop(name, None)
        store.update(items)
        if not self.delta:
            self.versions[t] = resp.version_info
        out = []
        if t == CLUSTER_TYPE:
            # Endpoints of clusters that left go away with them; new clusters subscribe theirs.
            for gone in set(self.endpoints) - set(self.clusters):
                del self.endpoints[gone]
        out.append(self._req(t, sorted(self.eds_names) if t == ENDPOINT_TYPE else ()))
        if t == CLUSTER_TYPE and set(self.clusters) != self.eds_names:
            out.extend(self._eds_subscription(set(self.clusters)))
        return out

    def _eds_subscription(self, names: set[str]) -> list[Any]:
        old, self.eds_names = self.eds_names, names
        if self.delta:
            r = discovery_pb2.DeltaDiscoveryRequest(
                type_url=ENDPOINT_TYPE,
                resource_names_subscribe=sorted(names - old),
                resource_names_unsubscribe=sorted(old - names),
                response_nonce=self.nonces.get(ENDPOINT_TYPE, ""),
            )
            return [r]
        return [self._req(ENDPOINT_TYPE, sorted(names))]

    def check(self) -> None:
        for lst in self.listeners.values():
            for c in clusters_named(lst):
                assert c in self.clusters, f"listener names {c}, proxy holds {sorted(self.clusters)}"
                assert c in self.endpoints, f"cluster {c} has no endpoints yet"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(delta: bool, flow: bool, clock: Clock) -> SotwStream | DeltaStream:
    kind = DeltaStream if delta else SotwStream
    return kind(make_before_break=True, flow_timeout=5.0 if flow else None, clock=clock, nonce_prefix="n")


def drive(stream: Any, envoy: FakeEnvoy, queue: list[Any], limit: int = 500) -> int:
    """Deliver responses until none is left; returns how many were delivered."""
    delivered = 0
    while queue:
        assert delivered < limit, "no quiescence: the server keeps pushing"
        resp = queue.pop(0)
        delivered += 1
        for req in envoy.apply(resp):
            envoy.check()
            queue.extend(stream.on_request(req))
    return delivered


routes_st = st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True)
configs_st = st.lists(st.tuples(routes_st, st.lists(st.sampled_from(POOL), max_size=2)), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    configs=configs_st,
    delta=st.booleans(),
    flow=st.booleans(),
    interleave=st.lists(st.integers(min_value=0, max_value=4), min_size=8, max_size=8),
)
def test_listeners_never_name_a_cluster_the_proxy_lacks(
    configs: list[tuple[list[str], list[str]]], delta: bool, flow: bool, interleave: list[int]
) -> None:
    clock = Clock()
    s = make(delta, flow, clock)
    envoy = FakeEnvoy(delta)
    first_routes = [r for r in configs[0][0] if r != REJECTED] or ["c0"]
    queue: list[Any] = []
    for req in envoy.first_requests():
        queue.extend(s.on_request(req))
    queue.extend(s.on_resources_changed(config(first_routes)))
    drive(s, envoy, queue)
    assert set(clusters_named(envoy.listeners["l0"])) == set(first_routes)
    for (routes, extra), partial in zip(configs, interleave, strict=False):
        clock.now += 0.1
        queue.extend(s.on_resources_changed(config(routes, extra), changed_at=clock.now))
        # Deliver only part of the backlog before the next change: changes overlap with pushes in flight.
        for _ in range(partial):
            if not queue:
                break
            resp = queue.pop(0)
            for req in envoy.apply(resp):
                envoy.check()
                queue.extend(s.on_request(req))
    clock.now += 10  # past any flow-control failsafe
    queue.extend(s.poll())
    drive(s, envoy, queue)
    routes, extra = configs[-1]
    final = config(routes, extra)
    if REJECTED not in routes:
        # Converged: the proxy holds exactly the final config, stale clusters removed.
        assert set(envoy.clusters) == set(final[CLUSTER_TYPE].entries)
        assert set(clusters_named(envoy.listeners["l0"])) == set(routes)
    else:
        # Rejected: the last good listener keeps its clusters.
        envoy.check()


def _setup(delta: bool, flow: bool = True) -> tuple[Any, FakeEnvoy, Clock]:
    clock = Clock()
    s = make(delta, flow, clock)
    envoy = FakeEnvoy(delta)
    queue: list[Any] = []
    for req in envoy.first_requests():
        queue.extend(s.on_request(req))
    queue.extend(s.on_resources_changed(config(["c0"])))
    drive(s, envoy, queue)
    return s, envoy, clock


def test_switch_pushes_union_then_listener_then_removal_sotw_and_delta() -> None:
    for delta in (False, True):
        s, envoy, _ = _setup(delta)
        out = s.on_resources_changed(config(["c1"]))
        # The listener waits for c1; c0 stays because the held listener names it.
        assert [r.type_url for r in out] == [CLUSTER_TYPE, ENDPOINT_TYPE]
        assert s.staged.waiting_for == {"c1"}
        queue = list(out)
        order: list[str] = []
        while queue:
            resp = queue.pop(0)
            order.append(resp.type_url)
            if resp.type_url == CLUSTER_TYPE and len(order) > 2:
                assert set(envoy.clusters) >= {"c0"}  # before the removal push
            for req in envoy.apply(resp):
                envoy.check()
                queue.extend(s.on_request(req))
        assert LISTENER_TYPE in order
        assert order.index(LISTENER_TYPE) > order.index(CLUSTER_TYPE)
        assert set(envoy.clusters) == {"c1"}, delta  # c0 removed after the listener switch was ACKed
        assert set(clusters_named(envoy.listeners["l0"])) == {"c1"}


def test_flow_control_holds_a_push_until_ack_or_timeout() -> None:
    for delta in (False, True):
        s, envoy, clock = _setup(delta)
        first = s.on_resources_changed(config(["c0"], timeout=2))
        assert [r.type_url for r in first] == [CLUSTER_TYPE, ENDPOINT_TYPE]
        # A second change before the CDS push is answered waits ...
        assert s.on_resources_changed(config(["c0"], timeout=3)) == []
        assert s.deferred >= 1
        # ... until the answer comes: then the newest content goes at once.
        out = s.on_request(envoy.apply(first[0])[0])
        assert [r.type_url for r in out] == [CLUSTER_TYPE], delta
        # Unanswered pushes are released by the failsafe timeout, not before.
        assert s.on_resources_changed(config(["c0"], timeout=4)) == []
        assert not s.timed_out()
        assert s.poll() == []
        clock.now += 5.0
        assert s.timed_out()
        assert [r.type_url for r in s.poll()] == [CLUSTER_TYPE, ENDPOINT_TYPE]


def test_nacked_listener_keeps_old_clusters_and_does_not_loop() -> None:
    for delta in (False, True):
        s, envoy, _ = _setup(delta)
        queue = list(s.on_resources_changed(config([REJECTED])))
        delivered = drive(s, envoy, queue)
        assert envoy.nacks == 1
        assert delivered <= 5
        assert set(clusters_named(envoy.listeners["l0"])) == {"c0"}
        assert "c0" in envoy.clusters
        assert s.type_status()[LISTENER_TYPE].state.value == "ERROR"
        # Nothing new: nothing is re-sent.
        assert s.on_resources_changed(config([REJECTED])) == []
