"""The distributed store: etcd v3 through ``aetcd`` (asyncio, gRPC; see README for why this client).

APISIX's pattern: one key per resource (``<prefix>/resources/<kind>/<namespace>/<name>``), everything read with
its revision, then a watch from revision+1; a watch event newer than the snapshot, a compaction or a lost watch means
a full re-read. The snapshot is what ``load()`` serves, so a replica that loses etcd keeps serving its last good
snapshot (and reports itself unavailable); commits fail clearly meanwhile. Every commit is one etcd transaction
that compares the ``<prefix>/revision`` key's mod_revision with the one the change was validated against, so
concurrent writers on any replica are serialised and none is lost. That also makes the committing replica's
snapshot plus its own change exactly the store at the commit's revision: it holds that without a re-read (a full
read of a few hundred resources costs more than the 3-member commit itself), and skips its own watch events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

from tcpmesh.store.backend import ChangeTooLarge, Key, Record, StaleRevision, StoreUnavailable

__all__ = ["EtcdBackend", "parse_etcd_url"]

T = TypeVar("T")
_TIMEOUT = 5.0
_PROBE = 0.5
DEFAULT_MAX_TXN_OPS = 128
"""etcd's default --max-txn-ops: one commit writes its resources and the revision key."""


def parse_etcd_url(url: str) -> tuple[list[tuple[str, int]], str]:
    """``etcd://h1:2379,h2:2379/prefix`` → endpoints and key prefix (default ``/tcpmesh``)."""
    rest = url.removeprefix("etcd://").partition("?")[0]
    hosts, _, prefix = rest.partition("/")
    endpoints = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--store {url}: give etcd://host:port[,host:port...][/prefix]")
        endpoints.append((host.strip("[]"), int(port)))
    return endpoints, "/" + (prefix.strip("/") or "tcpmesh")


class EtcdBackend:
    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.endpoints, prefix = parse_etcd_url(url)
        self.location = url
        query = parse_qs(urlparse(url).query)
        self.max_txn_ops = int(query.get("max-txn-ops", [str(DEFAULT_MAX_TXN_OPS)])[0])
        self._prefix = prefix.encode()
        self._resources = self._prefix + b"/resources/"
        self._guard = self._prefix + b"/revision"
        self._snapshot: tuple[int, dict[Key, Record]] | None = None
        """(the guard's mod_revision, the records): the last tcpmesh commit the snapshot holds, and its state."""
        self._at = 0
        """The etcd revision the snapshot was read at (or committed at): an older read never replaces it."""
        self._changed = threading.Condition()
        self.available = False
        self.error = "not connected yet"
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._client: Any = None
        self._endpoint = 0
        self._thread = threading.Thread(target=self._loop.run_forever, name="etcd", daemon=True)
        self._thread.start()
        self._sync_task = asyncio.run_coroutine_threadsafe(self._sync_forever(), self._loop)
        deadline = time.monotonic() + connect_timeout
        with self._changed:
            while self._snapshot is None and time.monotonic() < deadline:
                self._changed.wait(0.1)
        if self._snapshot is None:
            error = self.error
            self.close()
            raise StoreUnavailable(f"cannot reach etcd at {url}: {error}")

    # -- the snapshot -----------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = _TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self) -> Any:
        import aetcd

        if self._client is not None:
            return self._client
        host, port = self.endpoints[self._endpoint % len(self.endpoints)]
        client = aetcd.Client(host=host, port=port, timeout=int(_TIMEOUT), connect_wait_timeout=int(_TIMEOUT))
        await client.connect()
        self._client = client
        return client

    async def _drop(self, error: BaseException) -> None:
        self.available = False
        self.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        client, self._client = self._client, None
        self._endpoint += 1  # the next attempt tries the next member
        self._at = 0  # the first read after reconnecting replaces the snapshot, even from a restored etcd
        if client is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(client.close(), 1)

    async def _read_all(self) -> int:
        client = await self._connect()
        response = await asyncio.wait_for(client.get_prefix(self._prefix + b"/"), _TIMEOUT)
        records: dict[Key, Record] = {}
        guard = 0
        for kv in response:
            if kv.key == self._guard:
                guard = kv.mod_revision
            elif kv.key.startswith(self._resources):
                kind, namespace, name = kv.key[len(self._resources) :].decode().split("/", 2)
                data = json.loads(kv.value)
                records[(kind, namespace, name)] = Record(
                    kind, namespace, name, data["body"], data["source"], data.get("owner", ""),
                    int(data.get("generation", 1)), kv.create_revision, kv.mod_revision, int(data.get("position", 0)),
                )  # fmt: skip
        with self._changed:
            if int(response.header.revision) >= self._at:
                self._at = int(response.header.revision)
                self._snapshot = (guard, records)
            self.available = True
            self.error = ""
            self._changed.notify_all()
        return int(response.header.revision)

    async def _sync_forever(self) -> None:
        while not self._closing:
            try:
                revision = await self._read_all()
                client = self._client
                watch = await client.watch_prefix(self._prefix + b"/", start_revision=revision + 1)
                events = watch.__aiter__()
                while not self._closing:
                    try:
                        event = await asyncio.wait_for(events.__anext__(), _PROBE)
                        if event.kv.mod_revision > self._at:  # not a commit the snapshot holds (ours, or read)
                            await self._read_all()  # someone else's change: read everything again at its revision
                    except StopAsyncIteration:
                        break  # the watch ended (not an outage): read everything again and watch anew
                    except TimeoutError:
                        # No event: probe etcd, so an outage shows (and a lost watch is noticed) within a second.
                        guard = await asyncio.wait_for(client.get(self._guard), _TIMEOUT)
                        seen = self._snapshot[0] if self._snapshot else -1
                        if (guard.mod_revision if guard else 0) != seen:
                            break
                        self.available = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._drop(exc)
                await asyncio.sleep(0.2)

    # -- Backend ----------------------------------------------------------------------------------

    def revision(self) -> int:
        return self.read_all()[0]

    def read_all(self) -> tuple[int, dict[Key, Record]]:
        snapshot = self._snapshot
        if snapshot is None:
            raise StoreUnavailable(f"etcd at {self.location}: {self.error}")
        return snapshot[0], dict(snapshot[1])

    def _key(self, key: Key) -> bytes:
        return self._resources + "/".join(key).encode()

    def commit(self, base_revision: int, puts: list[Record], deletes: list[Key]) -> int:
        if len(puts) + len(deletes) + 1 > self.max_txn_ops:
            raise ChangeTooLarge(
                f"{len(puts) + len(deletes)} resource changes are more than one etcd transaction holds "
                f"({self.max_txn_ops - 1} with --max-txn-ops {self.max_txn_ops}); nothing was changed. Split the "
                "change, or raise etcd's --max-txn-ops and give ?max-txn-ops=N in the --store URL"
            )
        if not self.available:
            raise StoreUnavailable(f"etcd at {self.location} is unavailable ({self.error}); nothing was changed")
        try:
            succeeded, revision = self._run(self._commit(base_revision, puts, deletes))
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"etcd at {self.location}: {type(exc).__name__}: {exc}; the change may not have "
                                   "been committed: read it back") from exc  # fmt: skip
        if not succeeded:
            self._run(self._read_all())  # see the winner's state before validating again
            raise StaleRevision(f"etcd moved past revision {base_revision}")
        # Read-your-writes: the snapshot holds this commit before we answer, so the reload right after sees it.
        if not self._hold(base_revision, revision, puts, deletes):
            # On failure it is committed all the same; the watch brings the snapshot up to date.
            with contextlib.suppress(Exception):
                self._run(self._read_all())
        return revision

    def _hold(self, base_revision: int, revision: int, puts: list[Record], deletes: list[Key]) -> bool:
        """The snapshot at ``base_revision`` plus this commit, as the store at ``revision`` (the guard did not move
        in between, so no other commit did); False when the snapshot has moved on meanwhile."""
        with self._changed:
            snapshot = self._snapshot
            if snapshot is None or snapshot[0] != base_revision or self._at >= revision:
                return snapshot is not None and self._at >= revision  # a read already holds it
            records = dict(snapshot[1])
            for key in deletes:
                records.pop(key, None)
            for r in puts:
                old = records.get(r.key)
                created = old.create_revision if old is not None else revision  # as etcd sets it
                records[r.key] = dataclasses.replace(r, create_revision=created, mod_revision=revision)
            self._snapshot, self._at = (revision, records), revision
            self._changed.notify_all()
        return True

    async def _commit(self, base_revision: int, puts: list[Record], deletes: list[Key]) -> tuple[bool, int]:
        client = await self._connect()
        tx = client.transactions
        success = [tx.put(self._guard, b"")]
        success += [tx.delete(self._key(k)) for k in deletes]
        for r in puts:
            value = {"body": r.body, "source": r.source, "owner": r.owner, "generation": r.generation,
                     "position": r.position}  # fmt: skip
            success.append(tx.put(self._key(r.key), json.dumps(value).encode()))
        ok, responses = await asyncio.wait_for(
            client.transaction(compare=[tx.mod(self._guard) == base_revision], success=success, failure=[]),
            _TIMEOUT,
        )
        revision = responses[0].response_put.header.revision if ok and responses else 0
        return bool(ok), int(revision)

    def close(self) -> None:
        self._closing = True
        self._sync_task.cancel()

        async def shutdown() -> None:
            if self._client is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(self._client.close(), 1)

        with contextlib.suppress(BaseException):
            self._run(shutdown(), 2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(2)
