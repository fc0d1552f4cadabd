"""The server MUST checklist (docs: /work/shared/reference/xds-protocol.md §1.11), one test per item.

Every test drives a real grpc.aio XdsServer on 127.0.0.1 port 0 with a raw ADS client (ads_testkit); where an item
applies to both protocols the test is parametrized `[sotw]` / `[delta]`. "No response" is asserted by watching the
stream for QUIET (0.3 s); every wait has a deadline.

 1. Per-type version and nonce, fresh nonce per response
        test_01_version_and_nonce_per_type_fresh_nonce_per_response[sotw|delta]
 2. Node from the first request only; nodes hashed into config groups
        test_02_node_taken_from_first_request_only[sotw|delta]
        test_02_nodes_hashed_into_config_groups_share_one_generation
 3. NACK by error_detail: acked version kept, no re-push of the NACKed content
        test_03_nack_keeps_acked_version_and_is_not_repushed[sotw|delta]
 4. Stale nonce ignored (SotW); subscription changes honoured with a stale nonce (delta)
        test_04_sotw_request_with_stale_nonce_is_ignored
        test_04_delta_subscription_with_stale_nonce_is_honoured
 5. Only changed content is sent, no identical re-pushes
        test_05_only_changed_content_is_sent[sotw|delta]
 6. LDS and CDS are full state, omission means delete
        test_06_lds_cds_responses_are_full_state_omission_deletes   (delta's removals: item 12)
 7. No duplicate name in one response
        test_07_no_duplicate_names_in_one_response[sotw|delta]
 8. Wildcard `*`; empty means wildcard only before the first explicit subscription (xds_protocol.rst four steps)
        test_08_sotw_wildcard_four_steps
        test_08_delta_wildcard_four_steps
 9. Newly subscribed names resent even if unchanged; missing names remembered and pushed when they appear
        test_09_newly_subscribed_names_are_resent_even_if_unchanged[sotw|delta]
        test_09_missing_names_are_remembered_and_pushed_when_they_appear[sotw|delta]
10. Order CDS, EDS, LDS; clusters removed only after nothing references them (make-before-break, `references`)
        test_10_pushes_go_in_cds_eds_lds_order[sotw|delta]
        test_10_clusters_are_removed_only_after_no_listener_references_them[sotw|delta]
11. A CDS change is always followed by a fresh EDS response
        test_11_eds_is_resent_after_a_cds_change[sotw|delta]
12. Delta:
      - per-resource versions                       test_12_delta_per_resource_versions
      - removed_resources                           test_12_delta_removed_resources
      - initial_resource_versions diff + removals   test_12_delta_initial_resource_versions_diff_with_removals
      - respond to every subscribe                  test_12_delta_responds_to_every_subscribe
      - wildcard-plus-name unsubscribe exception    test_12_delta_wildcard_plus_name_unsubscribe_exception
13. Optional TTL and heartbeat via the Resource wrapper: not implemented (the server never sets a TTL and sends no
    heartbeats), so there is no test for it.

RDS is not served by tcpmesh (tcp_proxy has no routes), so item 10's "then RDS" has nothing to order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from envoy.config.listener.v3 import listener_pb2

from tcpmesh.xds.status import SyncState
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from tests.references import clusters_named
from tests.xds.ads_testkit import (
    QUIET,
    AdsClient,
    GeneratingServer,
    World,
    ack,
    cla,
    cluster,
    delta_ack,
    delta_nack,
    delta_request,
    delta_versions,
    listener,
    nack,
    names_in,
    node,
    request,
    run,
    set_simple,
    simple_world,
    with_server,
)

NODE = node(app="a")
TYPES = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE)


@dataclass(frozen=True)
class Flavor:
    """The SotW or delta way of saying the same thing on an ADS stream."""

    delta: bool

    def connect(self, port: int) -> AdsClient:
        return AdsClient(port, delta=self.delta)

    def ask(
        self, type_url: str, names: Sequence[str] = (), *, prev: Sequence[str] = (), nonce: str = "", n: Any = None
    ) -> Any:
        """Subscribe to `names` (after `prev`): SotW sends the whole list, delta the difference."""
        if not self.delta:
            return request(type_url, names, nonce=nonce, n=n)
        sub = [x for x in names if x not in prev]
        unsub = [x for x in prev if x not in names]
        return delta_request(type_url, sub, unsub, nonce=nonce, n=n)

    def ack(self, resp: Any, names: Sequence[str] = ()) -> Any:
        return delta_ack(resp) if self.delta else ack(resp, names)

    def nack(self, resp: Any, message: str, *, version: str, names: Sequence[str] = ()) -> Any:
        return delta_nack(resp, message) if self.delta else nack(resp, message, version=version, names=names)

    def names(self, resp: Any) -> list[str]:
        """Names of the resources a response carries, in order."""
        return [r.name for r in resp.resources] if self.delta else names_in(resp)


SOTW, DELTA = Flavor(False), Flavor(True)
BOTH = pytest.mark.parametrize("f", [pytest.param(SOTW, id="sotw"), pytest.param(DELTA, id="delta")])


async def synced(
    f: Flavor, port: int, *, eds: Sequence[str] = ("a-c1",), n: Any = NODE
) -> tuple[AdsClient, dict[str, Any]]:
    """Connect, subscribe CDS (wildcard), EDS `eds` and LDS (wildcard) at once, ACK the three answers."""
    c = f.connect(port)
    c.send(f.ask(CLUSTER_TYPE, n=n), f.ask(ENDPOINT_TYPE, eds), f.ask(LISTENER_TYPE))
    got: dict[str, Any] = {}
    for _ in TYPES:
        r = await c.recv()
        got[r.type_url] = r
    assert set(got) == set(TYPES)
    c.send(*(f.ack(got[t], eds if t == ENDPOINT_TYPE else ()) for t in TYPES))
    await c.quiet()
    return c, got


def status(server: GeneratingServer, type_url: str) -> Any:
    (proxy,) = server.status()
    return proxy.types[type_url]


# ----- 1


@BOTH
def test_01_version_and_nonce_per_type_fresh_nonce_per_response(f: Flavor) -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(f, port)
        nonces = [got[t].nonce for t in TYPES]
        assert len(set(nonces)) == 3
        before = {t: status(server, t).sent_version for t in TYPES}
        assert all(v for v in before.values())
        set_simple(world, port=15002)  # only the listener changes
        server.config_changed()
        lds = await c.recv()
        assert lds.type_url == LISTENER_TYPE
        assert lds.nonce not in nonces
        c.send(f.ack(lds))
        await c.quiet()
        after = {t: status(server, t).sent_version for t in TYPES}
        assert after[CLUSTER_TYPE] == before[CLUSTER_TYPE]
        assert after[ENDPOINT_TYPE] == before[ENDPOINT_TYPE]
        assert after[LISTENER_TYPE] != before[LISTENER_TYPE]
        if not f.delta:
            assert lds.version_info == after[LISTENER_TYPE] != got[LISTENER_TYPE].version_info
        await c.close()

    run(with_server(body, world))


# ----- 2


@BOTH
def test_02_node_taken_from_first_request_only(f: Flavor) -> None:
    world = simple_world()
    set_simple(world, "b", port=15005)

    async def body(server: GeneratingServer, port: int) -> None:
        c = f.connect(port)
        c.send(f.ask(CLUSTER_TYPE, n=NODE))
        cds = await c.recv()
        assert f.names(cds) == ["a-c1"]
        # No node on later requests: still served, as node a.
        c.send(f.ack(cds), f.ask(ENDPOINT_TYPE, ["a-c1"]))
        eds = await c.recv()
        assert f.names(eds) == ["a-c1"]
        # A different node on a later request is ignored: still node a's listener.
        c.send(f.ack(eds, ["a-c1"]), f.ask(LISTENER_TYPE, n=node("other-node", app="b")))
        lds = await c.recv()
        assert f.names(lds) == ["a-l1"]
        c.send(f.ack(lds))
        await c.quiet()
        (proxy,) = server.status()
        assert proxy.node == NODE
        await c.close()

    run(with_server(body, world))


def test_02_nodes_hashed_into_config_groups_share_one_generation() -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        clients = []
        for i in range(2):
            c = SOTW.connect(port)
            c.send(request(CLUSTER_TYPE, n=node(f"sidecar~10.0.0.{i}~pod{i}.default~x", app="a")))
            assert names_in(await c.recv()) == ["a-c1"]
            clients.append(c)
        assert world.calls == 1  # two node ids, one group (by app label): generated once
        ids = {p.node.id for p in server.status() if p.node}
        assert ids == {f"sidecar~10.0.0.{i}~pod{i}.default~x" for i in (0, 1)}
        for c in clients:
            await c.close()

    run(with_server(body, world, group_key=lambda n: n.labels.get("app")))


# ----- 3


@BOTH
def test_03_nack_keeps_acked_version_and_is_not_repushed(f: Flavor) -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c, _ = await synced(f, port)
        good = status(server, LISTENER_TYPE).acked_version
        assert good is not None
        set_simple(world, port=15009)
        server.config_changed()
        bad = await c.recv()
        assert bad.type_url == LISTENER_TYPE
        c.send(f.nack(bad, "bind: address in use", version=good))
        await c.quiet()  # no re-push of the NACKed content ...
        server.config_changed()
        await c.quiet()  # ... not even when the config is recomputed unchanged
        lds = status(server, LISTENER_TYPE)
        assert lds.state is SyncState.ERROR
        assert lds.acked_version == good
        assert lds.last_nack is not None
        assert lds.last_nack.message == "bind: address in use"
        # A real change is pushed again.
        set_simple(world, port=15010)
        server.config_changed()
        fixed = await c.recv()
        assert fixed.type_url == LISTENER_TYPE
        await c.close()

    run(with_server(body, world))


# ----- 4


def _eds_world() -> World:
    w = simple_world()
    w.apps["a"][ENDPOINT_TYPE] = [cla(n, "127.0.1.1") for n in ("a-c1", "a-c2", "a-c3")]
    return w


def test_04_sotw_request_with_stale_nonce_is_ignored() -> None:
    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(SOTW, port)
        n1 = got[ENDPOINT_TYPE].nonce
        c.send(request(ENDPOINT_TYPE, ["a-c1", "a-c2"], nonce=n1))
        r2 = await c.recv()
        assert names_in(r2) == ["a-c1", "a-c2"]
        # n1 is superseded by r2: a request carrying it is stale, even one that names a new resource.
        c.send(request(ENDPOINT_TYPE, ["a-c1", "a-c2", "a-c3"], nonce=n1))
        await c.quiet()
        c.send(request(ENDPOINT_TYPE, ["a-c1", "a-c2", "a-c3"], nonce="never-sent"))
        await c.quiet()
        # The same request with the latest nonce is answered, with the name it gained: EDS is not a full-state
        # type, so the client keeps a-c1 and a-c2 (xds_protocol.rst, "Grouping Resources into Responses").
        c.send(request(ENDPOINT_TYPE, ["a-c1", "a-c2", "a-c3"], nonce=r2.nonce))
        r3 = await c.recv()
        assert names_in(r3) == ["a-c3"]
        assert r3.version_info != r2.version_info
        await c.close()

    run(with_server(body, _eds_world()))


def test_04_delta_subscription_with_stale_nonce_is_honoured() -> None:
    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(DELTA, port)
        n1 = got[ENDPOINT_TYPE].nonce
        c.send(delta_request(ENDPOINT_TYPE, ["a-c2"], nonce=n1))
        r2 = await c.recv()
        assert list(delta_versions(r2)) == ["a-c2"]
        c.send(delta_request(ENDPOINT_TYPE, ["a-c3"], nonce=n1))  # n1 is stale now
        r3 = await c.recv()
        assert list(delta_versions(r3)) == ["a-c3"]
        c.send(delta_request(ENDPOINT_TYPE, [], ["a-c2"], nonce="never-sent"))  # honoured, nothing to send
        await c.quiet()
        assert status(server, ENDPOINT_TYPE).subscribed == {"a-c1", "a-c3"}
        await c.close()

    run(with_server(body, _eds_world()))


# ----- 5


@BOTH
def test_05_only_changed_content_is_sent(f: Flavor) -> None:
    world = simple_world()
    world.apps["a"][LISTENER_TYPE].append(listener("a-l2", 15020, "a-c1"))

    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(f, port)
        server.config_changed()  # recomputed, nothing changed
        await c.quiet()
        world.apps["a"][ENDPOINT_TYPE] = [cla("a-c1", "127.0.1.9")]
        server.config_changed()
        eds = await c.recv()
        assert (eds.type_url, f.names(eds)) == (ENDPOINT_TYPE, ["a-c1"])
        c.send(f.ack(eds, ["a-c1"]))
        await c.quiet()  # no other type
        world.apps["a"][LISTENER_TYPE][1] = listener("a-l2", 15021, "a-c1")
        server.config_changed()
        lds = await c.recv()
        assert lds.type_url == LISTENER_TYPE
        # SotW LDS is full state (both listeners, new version); delta carries only the changed one.
        assert f.names(lds) == (["a-l2"] if f.delta else ["a-l1", "a-l2"])
        if not f.delta:
            assert lds.version_info != got[LISTENER_TYPE].version_info
        c.send(f.ack(lds))
        await c.quiet()
        await c.close()

    run(with_server(body, world))


# ----- 6


def test_06_lds_cds_responses_are_full_state_omission_deletes() -> None:
    world = World()
    world.set(
        "a",
        clusters=[cluster("a-c1"), cluster("a-c2")],
        endpoints=[cla("a-c1", "127.0.1.1"), cla("a-c2", "127.0.1.2")],
        listeners=[listener("a-l1", 15001, "a-c1"), listener("a-l2", 15002, "a-c2")],
    )

    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(SOTW, port, eds=("a-c1", "a-c2"))
        assert names_in(got[CLUSTER_TYPE]) == ["a-c1", "a-c2"]
        assert names_in(got[LISTENER_TYPE]) == ["a-l1", "a-l2"]
        world.set("a", clusters=[cluster("a-c1")], endpoints=[cla("a-c1", "127.0.1.1")],
                  listeners=[listener("a-l1", 15001, "a-c1")])  # fmt: skip
        server.config_changed()
        out = {}
        for _ in TYPES:  # CDS, the EDS that follows any CDS push, LDS
            r = await c.recv()
            out[r.type_url] = r
        assert names_in(out[CLUSTER_TYPE]) == ["a-c1"]  # a-c2 omitted: deleted
        assert names_in(out[LISTENER_TYPE]) == ["a-l1"]
        c.send(*(ack(out[t], ["a-c1", "a-c2"] if t == ENDPOINT_TYPE else ()) for t in TYPES))
        await c.quiet()
        world.apps["a"][LISTENER_TYPE] = []
        server.config_changed()
        empty = await c.recv()
        assert empty.type_url == LISTENER_TYPE
        assert list(empty.resources) == []  # no resources: delete them all
        await c.close()

    run(with_server(body, world))


# ----- 7


@BOTH
def test_07_no_duplicate_names_in_one_response(f: Flavor) -> None:
    world = World()
    world.set(
        "a",
        clusters=[cluster("a-c1"), cluster("a-c1", timeout_s=7), cluster("a-c2")],
        endpoints=[cla("a-c1", "127.0.1.1"), cla("a-c1", "127.0.1.2")],
        listeners=[listener("a-l1", 15001, "a-c1"), listener("a-l1", 15002, "a-c1")],
    )

    async def body(server: GeneratingServer, port: int) -> None:
        c = f.connect(port)
        c.send(f.ask(CLUSTER_TYPE, n=NODE), f.ask(ENDPOINT_TYPE, ["a-c1", "a-c1"]), f.ask(LISTENER_TYPE))
        seen = [await c.recv() for _ in TYPES]
        assert [f.names(r) for r in seen] == [["a-c1", "a-c2"], ["a-c1"], ["a-l1"]]
        await c.close()

    run(with_server(body, world))


# ----- 8


def _three_clusters() -> World:
    w = World()
    w.set("a", clusters=[cluster("a-c1"), cluster("a-c2")])
    return w


def test_08_sotw_wildcard_four_steps() -> None:
    world = _three_clusters()

    async def body(server: GeneratingServer, port: int) -> None:
        c = SOTW.connect(port)
        # 1. resource_names unset: legacy wildcard.
        c.send(request(CLUSTER_TYPE, n=NODE))
        r = await c.recv()
        assert names_in(r) == ["a-c1", "a-c2"]
        # 2. ["*", "a-c1"]: still the wildcard, plus a-c1 (already held: nothing new to send).
        c.send(request(CLUSTER_TYPE, ["*", "a-c1"], version=r.version_info, nonce=r.nonce))
        await c.quiet()
        world.apps["a"][CLUSTER_TYPE].append(cluster("a-c3"))
        server.config_changed()
        r = await c.recv()
        assert names_in(r) == ["a-c1", "a-c2", "a-c3"]
        # 3. ["a-c1"]: the wildcard is dropped, a-c1 stays.
        c.send(request(CLUSTER_TYPE, ["a-c1"], version=r.version_info, nonce=r.nonce))
        r = await c.recv()
        assert names_in(r) == ["a-c1"]
        # 4. resource_names unset again: after an explicit subscription that means nothing, not the wildcard.
        c.send(request(CLUSTER_TYPE, [], version=r.version_info, nonce=r.nonce))
        r = await c.recv()
        assert names_in(r) == []
        c.send(ack(r))
        world.apps["a"][CLUSTER_TYPE].append(cluster("a-c4"))
        server.config_changed()
        await c.quiet()
        await c.close()

    run(with_server(body, world))


def test_08_delta_wildcard_four_steps() -> None:
    world = _three_clusters()

    async def body(server: GeneratingServer, port: int) -> None:
        c = DELTA.connect(port)
        # 1. resource_names_subscribe unset: legacy wildcard.
        c.send(delta_request(CLUSTER_TYPE, n=NODE))
        r = await c.recv()
        assert sorted(delta_versions(r)) == ["a-c1", "a-c2"]
        # 2. subscribe "a-c1": wildcard kept, plus a-c1 (sent again: every subscribe is answered).
        c.send(delta_request(CLUSTER_TYPE, ["a-c1"], nonce=r.nonce))
        r = await c.recv()
        assert list(delta_versions(r)) == ["a-c1"]
        c.send(delta_ack(r))
        world.apps["a"][CLUSTER_TYPE].append(cluster("a-c3"))
        server.config_changed()
        r = await c.recv()
        assert list(delta_versions(r)) == ["a-c3"]
        # 3. unsubscribe "*": only a-c1 remains; new and changed others are not sent.
        c.send(delta_request(CLUSTER_TYPE, [], ["*"], nonce=r.nonce))
        await c.quiet()
        world.apps["a"][CLUSTER_TYPE] = [cluster("a-c1"), cluster("a-c2", timeout_s=5), cluster("a-c4")]
        server.config_changed()
        await c.quiet()
        world.apps["a"][CLUSTER_TYPE][0] = cluster("a-c1", timeout_s=5)
        server.config_changed()
        r = await c.recv()
        assert list(delta_versions(r)) == ["a-c1"]
        assert list(r.removed_resources) == []
        # 4. unsubscribe "a-c1": nothing subscribed (an empty list no longer means the wildcard).
        c.send(delta_request(CLUSTER_TYPE, [], ["a-c1"], nonce=r.nonce))
        await c.quiet()
        world.apps["a"][CLUSTER_TYPE] = [cluster("a-c1", timeout_s=6), cluster("a-c5")]
        server.config_changed()
        await c.quiet()
        await c.close()

    run(with_server(body, world))


# ----- 9


@BOTH
def test_09_newly_subscribed_names_are_resent_even_if_unchanged(f: Flavor) -> None:
    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(f, port, eds=("a-c1", "a-c2"))
        r = got[ENDPOINT_TYPE]
        # Dropping a name needs no answer: EDS has no deletion in SotW, and a pure delta unsubscribe has none.
        c.send(f.ask(ENDPOINT_TYPE, ["a-c2"], prev=["a-c1", "a-c2"], nonce=r.nonce))
        await c.quiet()
        c.send(f.ask(ENDPOINT_TYPE, ["a-c1", "a-c2"], prev=["a-c2"], nonce=r.nonce))
        r = await c.recv()
        assert "a-c1" in f.names(r)  # unchanged since it was first sent, sent again
        await c.close()

    run(with_server(body, _eds_world()))


@BOTH
def test_09_missing_names_are_remembered_and_pushed_when_they_appear(f: Flavor) -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(f, port, eds=("a-c1", "later"))
        assert f.names(got[ENDPOINT_TYPE]) == ["a-c1"]
        if f.delta:
            assert list(got[ENDPOINT_TYPE].removed_resources) == ["later"]  # delta says it does not exist
        world.apps["a"][ENDPOINT_TYPE].append(cla("later", "127.0.1.5"))
        server.config_changed()
        r = await c.recv()
        assert r.type_url == ENDPOINT_TYPE
        assert "later" in f.names(r)
        await c.close()

    run(with_server(body, world))


# ----- 10


@BOTH
def test_10_pushes_go_in_cds_eds_lds_order(f: Flavor) -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(f, port)  # asked CDS, EDS, LDS at once: answered in that order (see `synced`)
        assert list(got) == list(TYPES)
        # A change to every type: pushed clusters first, then endpoints, then listeners.
        set_simple(world, timeout_s=2, addr="127.0.1.2", port=15002)
        server.config_changed()
        pushed = [await c.recv() for _ in TYPES]
        assert [r.type_url for r in pushed] == list(TYPES)
        await c.close()

    run(with_server(body, world))


class MiniEnvoy:
    """Applies responses as Envoy's ADS mux does and checks tcp_proxy's need after each one: every cluster a held
    listener names is held, with endpoints. ACKs everything; (re)subscribes endpoints for the clusters it holds."""

    def __init__(self, f: Flavor, c: AdsClient) -> None:
        self.f, self.c = f, c
        self.clusters: set[str] = set()
        self.endpoints: set[str] = set()
        self.listeners: dict[str, frozenset[str]] = {}
        self.eds: list[str] = []
        self.eds_nonce = ""
        self.trace: list[tuple[str, frozenset[str], frozenset[str]]] = []
        """(type, clusters held, clusters the listeners name) after each applied response."""

    def _patch(self, held: set[str], resp: Any) -> tuple[set[str], dict[str, Any]]:
        if self.f.delta:
            items = {r.name: r.resource for r in resp.resources}
            return (held | set(items)) - set(resp.removed_resources), items
        items = dict(zip(names_in(resp), resp.resources, strict=True))
        return set(items), items

    def apply(self, resp: Any) -> None:
        out = [self.f.ack(resp, self.eds if resp.type_url == ENDPOINT_TYPE else ())]
        if resp.type_url == CLUSTER_TYPE:
            self.clusters, _ = self._patch(self.clusters, resp)
            self.endpoints &= self.clusters
            want = sorted(self.clusters)
            if want != self.eds:
                out.append(self.f.ask(ENDPOINT_TYPE, want, prev=self.eds, nonce=self.eds_nonce))
                self.eds = want
        elif resp.type_url == ENDPOINT_TYPE:
            self.eds_nonce = resp.nonce
            got, _ = self._patch(self.endpoints, resp)
            self.endpoints = (self.endpoints | got if not self.f.delta else got) & self.clusters
        else:
            held, items = self._patch(set(self.listeners), resp)
            for name, any_ in items.items():
                lst = listener_pb2.Listener()
                any_.Unpack(lst)
                self.listeners[name] = frozenset(clusters_named(lst))
            self.listeners = {n: v for n, v in self.listeners.items() if n in held}
        named = frozenset().union(*self.listeners.values())
        assert named <= self.clusters, f"listener names {sorted(named - self.clusters)}, not held"
        assert named <= self.endpoints, f"cluster {sorted(named - self.endpoints)} has no endpoints"
        self.trace.append((resp.type_url, frozenset(self.clusters), named))
        self.c.send(*out)

    async def settle(self, limit: int = 30) -> None:
        """Apply responses until the server is quiet for QUIET seconds."""
        for _ in range(limit):
            try:
                resp = await self.c.recv(QUIET)
            except TimeoutError:
                return
            self.apply(resp)
        raise AssertionError("no quiescence: the server keeps pushing")


@BOTH
def test_10_clusters_are_removed_only_after_no_listener_references_them(f: Flavor) -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c = f.connect(port)
        envoy = MiniEnvoy(f, c)
        c.send(f.ask(CLUSTER_TYPE, n=NODE), f.ask(LISTENER_TYPE))
        await envoy.settle()
        assert (envoy.clusters, envoy.listeners) == ({"a-c1"}, {"a-l1": frozenset({"a-c1"})})
        start = len(envoy.trace)
        # Switch the listener from a-c1 to a-c2; a-c1 leaves the config in the same change.
        world.set("a", clusters=[cluster("a-c2")], endpoints=[cla("a-c2", "127.0.1.2")],
                  listeners=[listener("a-l1", 15001, "a-c2")])  # fmt: skip
        server.config_changed()
        await envoy.settle()
        assert (envoy.clusters, envoy.listeners) == ({"a-c2"}, {"a-l1": frozenset({"a-c2"})})
        trace = envoy.trace[start:]
        switched = next(i for i, (t, _, named) in enumerate(trace) if t == LISTENER_TYPE and "a-c2" in named)
        added = next(i for i, (t, held, _) in enumerate(trace) if t == CLUSTER_TYPE and "a-c2" in held)
        removed = next(i for i, (t, held, _) in enumerate(trace) if t == CLUSTER_TYPE and "a-c1" not in held)
        assert added < switched < removed, trace
        assert any(t == ENDPOINT_TYPE for t, _, _ in trace[added:switched])
        await c.close()

    run(with_server(body, world, make_before_break=True))


# ----- 11


@BOTH
def test_11_eds_is_resent_after_a_cds_change(f: Flavor) -> None:
    world = simple_world()

    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(f, port)
        set_simple(world, timeout_s=9)  # the cluster changes, its endpoints do not
        server.config_changed()
        cds = await c.recv()
        eds = await c.recv()
        assert (cds.type_url, eds.type_url) == (CLUSTER_TYPE, ENDPOINT_TYPE)
        assert f.names(eds) == ["a-c1"]
        assert eds.nonce != got[ENDPOINT_TYPE].nonce
        if f.delta:
            assert delta_versions(eds) == delta_versions(got[ENDPOINT_TYPE])
        else:
            assert eds.version_info == got[ENDPOINT_TYPE].version_info
        await c.close()

    run(with_server(body, world))


# ----- 12 (delta)


def _two_clusters() -> World:
    w = World()
    w.set("a", clusters=[cluster("a-c1"), cluster("a-c2")])
    return w


def test_12_delta_per_resource_versions() -> None:
    world = _two_clusters()

    async def body(server: GeneratingServer, port: int) -> None:
        c = DELTA.connect(port)
        c.send(delta_request(CLUSTER_TYPE, n=NODE))
        r = await c.recv()
        v1 = delta_versions(r)
        assert set(v1) == {"a-c1", "a-c2"}
        assert v1["a-c1"] != v1["a-c2"]
        assert all(v1.values())
        c.send(delta_ack(r))
        world.apps["a"][CLUSTER_TYPE][1] = cluster("a-c2", timeout_s=4)
        server.config_changed()
        r = await c.recv()
        v2 = delta_versions(r)
        assert list(v2) == ["a-c2"]  # a-c1 keeps its version and is not sent
        assert v2["a-c2"] != v1["a-c2"]
        await c.close()

    run(with_server(body, world))


def test_12_delta_removed_resources() -> None:
    world = _two_clusters()

    async def body(server: GeneratingServer, port: int) -> None:
        c = DELTA.connect(port)
        c.send(delta_request(CLUSTER_TYPE, n=NODE))
        c.send(delta_ack(await c.recv()))
        world.apps["a"][CLUSTER_TYPE] = [cluster("a-c1")]
        server.config_changed()
        r = await c.recv()
        assert list(r.resources) == []
        assert list(r.removed_resources) == ["a-c2"]
        await c.close()

    run(with_server(body, world))


def test_12_delta_initial_resource_versions_diff_with_removals() -> None:
    world = _two_clusters()

    async def body(server: GeneratingServer, port: int) -> None:
        c = DELTA.connect(port)
        c.send(delta_request(CLUSTER_TYPE, n=NODE))
        held = delta_versions(await c.recv())
        await c.close()
        # While disconnected: a-c2 changes, a-c2's sibling a-c3 appears, and the client also holds "gone".
        world.apps["a"][CLUSTER_TYPE] = [cluster("a-c1"), cluster("a-c2", timeout_s=3), cluster("a-c3")]
        server.config_changed()
        c = DELTA.connect(port)
        c.send(delta_request(CLUSTER_TYPE, ["*"], initial={**held, "gone": "v-old"}, n=NODE))
        r = await c.recv()
        assert sorted(delta_versions(r)) == ["a-c2", "a-c3"]  # a-c1 unchanged: not re-sent
        assert list(r.removed_resources) == ["gone"]
        c.send(delta_ack(r))
        await c.quiet()
        await c.close()

    run(with_server(body, world))


def test_12_delta_responds_to_every_subscribe() -> None:
    async def body(server: GeneratingServer, port: int) -> None:
        c, got = await synced(DELTA, port)
        nonce = got[ENDPOINT_TYPE].nonce
        for _ in range(2):  # a-c1 is held already, still answered every time
            c.send(delta_request(ENDPOINT_TYPE, ["a-c1"], nonce=nonce))
            r = await c.recv()
            assert list(delta_versions(r)) == ["a-c1"]
            nonce = r.nonce
        for _ in range(2):  # a name that does not exist: answered with it removed, every time
            c.send(delta_request(ENDPOINT_TYPE, ["nope"], nonce=nonce))
            r = await c.recv()
            assert (list(r.resources), list(r.removed_resources)) == ([], ["nope"])
            nonce = r.nonce
        await c.close()

    run(with_server(body, _eds_world()))


def test_12_delta_wildcard_plus_name_unsubscribe_exception() -> None:
    world = _two_clusters()

    async def body(server: GeneratingServer, port: int) -> None:
        c = DELTA.connect(port)
        c.send(delta_request(CLUSTER_TYPE, ["*", "a-c1", "nope"], n=NODE))
        r = await c.recv()
        assert sorted(delta_versions(r)) == ["a-c1", "a-c2"]
        assert list(r.removed_resources) == ["nope"]
        # Unsubscribing a name while subscribed to the wildcard too: the server must answer, with the resource
        # if the wildcard still covers it, otherwise in removed_resources.
        c.send(delta_request(CLUSTER_TYPE, [], ["a-c1"], nonce=r.nonce))
        r = await c.recv()
        assert (list(delta_versions(r)), list(r.removed_resources)) == (["a-c1"], [])
        c.send(delta_request(CLUSTER_TYPE, [], ["nope"], nonce=r.nonce))
        r = await c.recv()
        assert (list(r.resources), list(r.removed_resources)) == ([], ["nope"])
        c.send(delta_ack(r))
        await c.quiet()
        await c.close()

    run(with_server(body, world))
