"""The SDS part of ``/debug/syncz`` and ``tcpmesh status``: per connected proxy, every Secret name its served
listeners and clusters reference, whether it is served, the certificate's expiry, and why a missing one is
missing. Never a key, never a certificate body."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cryptography import x509
from google.protobuf.message import Message

from tcpmesh.model.config import Config
from tcpmesh.model.credentials import by_key
from tcpmesh.translator.secrets import cluster_sds_names, listener_sds_names, resolve_names
from tcpmesh.xds.cache import Snapshot
from tcpmesh.xds.types import CLUSTER_TYPE, LISTENER_TYPE, SECRET_TYPE

__all__ = ["SdsNames", "credentials_json"]


def _not_after(secret: Message) -> str | None:
    chain = getattr(secret, "tls_certificate").certificate_chain.inline_bytes  # noqa: B009
    if not chain:
        chain = getattr(secret, "validation_context").trusted_ca.inline_bytes  # noqa: B009
    try:
        certs = x509.load_pem_x509_certificates(chain)
    except ValueError:
        return None
    return min(c.not_valid_after_utc for c in certs).strftime("%Y-%m-%dT%H:%M:%SZ") if certs else None


class SdsNames:
    """The SDS names each served listener and cluster references, remembered per resource version: a status
    page is polled, and reading every listener and cluster of a 10 000-service snapshot on each poll took
    seconds of the event loop. Holds what the last call's snapshots hold, no more."""

    _KEPT = 16

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str, str], tuple[str, ...]] = {}
        self._by_types: dict[tuple[str, str], frozenset[str]] = {}
        """By (listener, cluster) type version: a poll while nothing changed reads no entry."""

    def of(self, snapshots: Iterable[Snapshot | None]) -> list[frozenset[str]]:
        memo: dict[tuple[str, str, str], tuple[str, ...]] = {}
        out: list[frozenset[str]] = []
        for snapshot in snapshots:
            if snapshot is None:
                out.append(frozenset())
                continue
            key = (snapshot.get_type(LISTENER_TYPE).version, snapshot.get_type(CLUSTER_TYPE).version)
            known = self._by_types.get(key)
            if known is not None:
                out.append(known)
                continue
            names: set[str] = set()
            for type_url, names_of in ((LISTENER_TYPE, listener_sds_names), (CLUSTER_TYPE, cluster_sds_names)):
                for name, entry in snapshot.get_type(type_url).entries.items():
                    entry_key = (type_url, name, entry.version)
                    found = memo.get(entry_key) or self._memo.get(entry_key)
                    if found is None:
                        found = tuple(names_of(entry.message))
                    memo[entry_key] = found
                    names.update(found)
            if len(self._by_types) >= self._KEPT:
                del self._by_types[next(iter(self._by_types))]
            out.append(self._by_types.setdefault(key, frozenset(names)))
        if memo:
            self._memo = memo
        return out


def credentials_json(
    config: Config, proxies: Iterable[tuple[str, str, Snapshot | None]], sds_names: SdsNames | None = None
) -> list[dict[str, Any]]:
    """``proxies``: (node id, proxy namespace, the snapshot served to it)."""
    secrets = by_key(config.secrets)
    proxies = list(proxies)
    named = (sds_names or SdsNames()).of(snapshot for _, _, snapshot in proxies)
    out: list[dict[str, Any]] = []
    for (node_id, namespace, snapshot), names in zip(proxies, named, strict=True):
        given = snapshot.get_type(SECRET_TYPE).entries if snapshot is not None else {}
        for resolved in resolve_names(names, namespace, secrets):
            name = resolved.resource_name
            entry: dict[str, Any] = {"proxy": node_id, "name": name, "served": name in given}
            if resolved.ref is not None:
                entry["secret"] = f"{resolved.ref.namespace}/{resolved.ref.name}"
            if name in given:
                entry["not_after"] = _not_after(given[name].message)
            else:
                entry["problem"] = resolved.problem or "not served yet"
            out.append(entry)
    return out
