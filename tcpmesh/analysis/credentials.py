"""credentialName references that serve nothing (TM0101, TM0304), and the per-proxy SDS view status shows.

For each proxy: the TLS servers of the Gateways selecting it (SIMPLE / MUTUAL / OPTIONAL_MUTUAL) and the
DestinationRule ``tls`` settings (SIMPLE / MUTUAL) that name a credential, each resolved exactly as the translator
serves it (translator/secrets.py). istiod serves nothing for such a name; Envoy keeps the listener warming up to
its initial fetch timeout and then refuses handshakes on that chain until the Secret is applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tcpmesh.analysis.codes import INVALID_CREDENTIAL, REFERENCED_RESOURCE_NOT_FOUND
from tcpmesh.analysis.context import Context
from tcpmesh.analysis.findings import Finding
from tcpmesh.model.config import Config
from tcpmesh.model.credentials import by_key, ca_resource_name, to_resource_name
from tcpmesh.model.resources import ClientTLS, Meta, TrafficPolicy
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.secrets import Resolved, resolve_names

__all__ = ["CredentialUse", "analyze_credentials", "credential_uses"]


@dataclass(frozen=True, slots=True)
class CredentialUse:
    """One SDS name a resource makes a proxy ask for, and how it resolves for that proxy."""

    meta: Meta
    path: str
    credential: str
    resolved: Resolved


def _server_names(tls_names: tuple[str, ...], credential: str, mode: str) -> list[str]:
    names = [to_resource_name(n) for n in (tls_names or (credential,))]
    if mode in ("MUTUAL", "OPTIONAL_MUTUAL"):
        names.append(ca_resource_name((tls_names or (credential,))[0]))
    return names


def _client_names(tls: ClientTLS) -> list[str]:
    names = [to_resource_name(tls.credential_name)] if tls.mode == "MUTUAL" else []
    if not tls.insecure_skip_verify:
        names.append(ca_resource_name(tls.credential_name))
    return names


def _policies(policy: TrafficPolicy | None, path: str) -> Iterator[tuple[str, ClientTLS]]:
    if policy is None:
        return
    if policy.tls is not None:
        yield f"{path}.tls", policy.tls
    for i, port in enumerate(policy.port_level_settings):
        if port.tls is not None:
            yield f"{path}.portLevelSettings[{i}].tls", port.tls


def credential_uses(config: Config, proxy: Proxy) -> list[CredentialUse]:
    """Every credential SDS name ``proxy`` is made to ask for, resolved against the config's Secrets."""
    secrets = by_key(config.secrets)
    wanted: list[tuple[Meta, str, str, list[str]]] = []
    if proxy.role == "gateway":
        for gw in config.gateways:
            if not proxy.serves(gw):
                continue
            for i, server in enumerate(gw.servers):
                tls = server.tls
                if tls is None or tls.mode not in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"):
                    continue
                if tls.credential_name or tls.credential_names:
                    field = "credentialNames" if tls.credential_names else "credentialName"
                    names = _server_names(tls.credential_names, tls.credential_name, tls.mode)
                    shown = ",".join(tls.credential_names) or tls.credential_name
                    wanted.append((gw.meta, f"spec.servers[{i}].tls.{field}", shown, names))
    for dr in config.destination_rules:
        if proxy.role == "sidecar" and (dr.workload_selector is None or not proxy.selected_by(dr.workload_selector)):
            continue  # buildUpstreamClusterTLSContext: sidecars only with a workloadSelector
        policies = list(_policies(dr.traffic_policy, "spec.trafficPolicy"))
        for i, subset in enumerate(dr.subsets):
            policies.extend(_policies(subset.traffic_policy, f"spec.subsets[{i}].trafficPolicy"))
        for path, client in policies:
            name = client.credential_name
            if name and client.mode in ("SIMPLE", "MUTUAL") and not name.startswith("configmap://"):
                wanted.append((dr.meta, f"{path}.credentialName", name, _client_names(client)))
    out = []
    for meta, path, credential, names in wanted:
        for resolved in resolve_names(names, proxy.namespace, secrets):
            out.append(CredentialUse(meta, path, credential, resolved))
    return out


def analyze_credentials(ctx: Context) -> Iterator[Finding]:
    proxies: Sequence[Proxy] = ctx.proxies
    for proxy in proxies:
        for use in credential_uses(ctx.config, proxy):
            r = use.resolved
            if r.info is not None:
                continue
            code = REFERENCED_RESOURCE_NOT_FOUND if r.problem.endswith("not found") else INVALID_CREDENTIAL
            yield code.at(
                use.meta,
                use.path,
                f"credential {use.credential!r}: SDS secret {r.resource_name} (proxy namespace {proxy.namespace}): "
                f"{r.problem}; TLS that needs it fails (handshakes refused, or no upstream connection) until it exists",
            )
