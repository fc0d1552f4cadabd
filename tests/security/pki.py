"""A throwaway CA and certificates (openssl CLI) for TLS tests: server, and clients with chosen SANs."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["make_ca", "make_cert"]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=tcpmesh-test-ca", cwd=d)  # fmt: skip
    return d / "ca.pem"


def make_cert(d: Path, name: str, san: str) -> tuple[Path, Path]:
    """``name``.pem / ``name``.key signed by the CA in ``d``; ``san`` like ``URI:spiffe://...`` or ``DNS:x``."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", cwd=d)  # fmt: skip
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip
    return d / f"{name}.pem", d / f"{name}.key"
