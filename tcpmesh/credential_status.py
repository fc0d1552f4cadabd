"""The SDS part of ``/debug/syncz`` and ``tcpmesh status``: per connected proxy, every Secret name its served
listeners and clusters reference, whether it is served, the certificate's expiry, and why a missing one is
missing. Never a key, never a certificate body."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509
from google.protobuf.message import Message

from tcpmesh.model.config import Config
from tcpmesh.model.credentials import by_key
from tcpmesh.translator.secrets import cluster_sds_names, listener_sds_names, resolve_names
from tcpmesh.xds.types import CLUSTER_TYPE, LISTENER_TYPE, SECRET_TYPE

__all__ = ["credentials_json"]


def _not_after(secret: Message) -> str | None:
    chain = getattr(secret, "tls_certificate").certificate_chain.inline_bytes  # noqa: B009
    if not chain:
        chain = getattr(secret, "validation_context").trusted_ca.inline_bytes  # noqa: B009
    try:
        certs = x509.load_pem_x509_certificates(chain)
    except ValueError:
        return None
    return min(c.not_valid_after_utc for c in certs).strftime("%Y-%m-%dT%H:%M:%SZ") if certs else None


def credentials_json(
    config: Config, proxies: Iterable[tuple[str, str, Mapping[str, Mapping[str, Message]]]]
) -> list[dict[str, Any]]:
    """``proxies``: (node id, proxy namespace, the resources served to it by type URL)."""
    secrets = by_key(config.secrets)
    out: list[dict[str, Any]] = []
    for node_id, namespace, served in proxies:
        names = {n for m in served.get(LISTENER_TYPE, {}).values() for n in listener_sds_names(m)}
        names.update(n for m in served.get(CLUSTER_TYPE, {}).values() for n in cluster_sds_names(m))
        given = served.get(SECRET_TYPE, {})
        for resolved in resolve_names(names, namespace, secrets):
            name = resolved.resource_name
            entry: dict[str, Any] = {"proxy": node_id, "name": name, "served": name in given}
            if resolved.ref is not None:
                entry["secret"] = f"{resolved.ref.namespace}/{resolved.ref.name}"
            if name in given:
                entry["not_after"] = _not_after(given[name])
            else:
                entry["problem"] = resolved.problem or "not served yet"
            out.append(entry)
    return out
