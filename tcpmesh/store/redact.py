"""Stored Secrets as `tcpmesh get` shows them: certificates as written, every other value redacted.

The store keeps a Secret as applied (private keys included: the control plane must serve them); nothing it
prints may carry one, so a Secret's ``data``/``stringData`` values other than certificates, CRLs and OCSP
staples, and kubectl's last-applied annotation (a full copy of the object), are replaced.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PUBLIC_SECRET_KEYS", "REDACTED", "redact_object"]

REDACTED = "[redacted]"
PUBLIC_SECRET_KEYS = frozenset({"tls.crt", "ca.crt", "ca.crl", "tls.ocsp-staple", "cert", "cacert", "crl"})
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def redact_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored object safe to print (objects other than Secrets are returned unchanged)."""
    if obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        values = out.get(field)
        if isinstance(values, dict):
            out[field] = {k: v if k in PUBLIC_SECRET_KEYS else REDACTED for k, v in values.items()}
    meta = out.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict) and _LAST_APPLIED in meta["annotations"]:
        out["metadata"] = {**meta, "annotations": {**meta["annotations"], _LAST_APPLIED: REDACTED}}
    return out
