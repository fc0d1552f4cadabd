"""The control plane's HTTP API on loopback: health, metrics, per-proxy status and config, and the config store
(apply / delete / get) so the CLI works against a running control plane like kubectl against an API server."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import yaml
from aiohttp import web

from tcpmesh.apiauth import middlewares
from tcpmesh.apitoken import ApiPolicy
from tcpmesh.controlplane import ControlPlane
from tcpmesh.credential_status import credentials_json
from tcpmesh.model.gatewayapi.convert import Conversion
from tcpmesh.model.gatewayapi.listeners import GATEWAY_NAME_LABEL
from tcpmesh.model.gatewayapi.resources import KUBE_GATEWAY
from tcpmesh.model.gatewayapi.status import GATEWAY_API_KINDS, object_status, status_items, with_connected_proxies
from tcpmesh.model.problems import Problem, capped
from tcpmesh.model.yamlsource import decode_utf8
from tcpmesh.publisher import proxy_from_node
from tcpmesh.render import message_to_dict
from tcpmesh.store import ApplyResult, Record, StoreUnavailable, resolve_kind
from tcpmesh.store.redact import redact_object
from tcpmesh.traffic import TrafficView
from tcpmesh.ui import PAGE
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE

__all__ = ["MAX_BODY_BYTES", "build_app", "record_json", "status_json"]

MAX_BODY_BYTES = 4 * 1024 * 1024
_KINDS = {
    "listeners": LISTENER_TYPE,
    "clusters": CLUSTER_TYPE,
    "endpoints": ENDPOINT_TYPE,
    "extension_configs": EXTENSION_CONFIG_TYPE,
    "routes": ROUTE_TYPE,
    "secrets": SECRET_TYPE,  # private keys redacted by message_to_dict
}
_CP: web.AppKey[ControlPlane] = web.AppKey("control_plane", ControlPlane)
TRAFFIC: web.AppKey[TrafficView] = web.AppKey("traffic", TrafficView)
"""Set by the server that receives the proxies' stats; without it /api/traffic reports no stats."""


def _problem_json(p: Problem) -> dict[str, Any]:
    return {
        "message": p.message,
        "file": p.file,
        "line": p.line,
        "kind": p.kind,
        "namespace": p.namespace,
        "name": p.name,
        "field": p.field,
        "severity": p.severity.value,
        "text": str(p),
    }


def _gateway_proxies(statuses: list[Any], namespace: str, name: str) -> int:
    """The connected proxies of a Gateway API Gateway: labelled with its name, in its namespace."""
    return sum(
        1
        for st in statuses
        if st.node.labels.get(GATEWAY_NAME_LABEL) == name and proxy_from_node(st.node).namespace == namespace
    )


def _gateway_api_items(cp: ControlPlane, statuses: list[Any]) -> list[dict[str, Any]]:
    items = status_items(cp.config.gateway_api())
    for item in items:
        if item["kind"] == "Gateway":
            connected = _gateway_proxies(statuses, item["namespace"], item["name"])
            with_connected_proxies(item["status"], item["name"], connected)
    return items


def status_json(cp: ControlPlane) -> dict[str, Any]:
    rejection = cp.rejection
    proxies = []
    statuses = sorted(cp.xds.status(), key=lambda s: (s.node_id, s.stream_id))
    streams_per_id = collections.Counter(s.node_id for s in statuses)
    for st in statuses:
        types = {}
        for url, ts in st.types.items():
            types[url.rsplit(".", 1)[-1]] = {
                "state": ts.state.value,
                "sent": ts.sent_version,
                "acked": ts.acked_version,
                "resources": ts.sent_count,
                "last_nack": None
                if ts.last_nack is None
                else {"message": ts.last_nack.message, "version": ts.last_nack.version, "at": ts.last_nack.at},
            }
        proxies.append(
            {
                "id": st.node_id,
                "protocol": st.protocol,
                "connected_since": st.connected_since,
                "user_agent": st.node.user_agent,
                "types": types,
                # Several streams claiming one node id: two proxies sharing an id, or one posing as another.
                "duplicate": streams_per_id[st.node_id] > 1,
            }
        )
    return {
        "generation": cp.generation,
        "resources": len(cp.config),
        "rejected": None
        if rejection is None
        else _rejected_json(rejection.at, [p for p in rejection.problems if p.is_error]),
        "proxies": proxies,
        "duplicate_ids": sorted(i for i, n in streams_per_id.items() if n > 1),
        "connection_preserving": not cp.options.inline_weights,
        "restored_groups": cp.restored_groups,
        "store": cp.store.location,
        "store_available": cp.store.backend.available,
        "input_problems": {
            file: [_problem_json(p) for p in problems] for file, problems in sorted(cp.store.input_problems.items())
        },
        "credentials": credentials_json(
            cp.config,
            (
                (st.node_id, proxy_from_node(st.node).namespace, served.get(st.node_id))
                for served in (cp.xds.snapshots(),)
                for st in {s.node_id: s for s in statuses}.values()
            ),
            cp.sds_names,
        ),
        "gateway_api": _gateway_api_items(cp, statuses),
        "time": time.time(),
    }


def _rejected_json(at: float, problems: list[Problem]) -> dict[str, Any]:
    shown, more = capped(problems)
    return {"at": at, "problems": [_problem_json(p) for p in shown], "more_problems": more}


def _result_json(result: ApplyResult) -> dict[str, Any]:
    shown, more = capped(result.problems)
    return {
        "ok": result.ok,
        "lines": result.lines,
        "problems": [_problem_json(p) for p in shown],
        "more_problems": more,
        "items": result.items,
        "revision": result.revision,
    }


def record_json(r: Record) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "namespace": r.namespace,
        "name": r.name,
        "file": r.owner or r.source,
        "resourceVersion": str(r.mod_revision),
        "generation": r.generation,
        "owned": bool(r.owner),
    }


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    cp = request.app[_CP]
    backend = cp.store.backend
    if not backend.available:
        # Still serving the last good snapshot to the proxies, but changes cannot be made through this replica.
        return web.Response(status=503, text=f"store unavailable: {backend.error}\n")
    return web.Response(text="ready\n") if cp.generation > 0 else web.Response(status=503, text="no config yet\n")


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_CP].metrics.render(), content_type="text/plain", charset="utf-8")


async def _status(request: web.Request) -> web.Response:
    return web.json_response(status_json(request.app[_CP]))


async def _traffic(request: web.Request) -> web.Response:
    cp = request.app[_CP]
    view = request.app.get(TRAFFIC)
    node_ids = [s.node_id for s in cp.xds.status()]
    return web.json_response({"proxies": view.report(node_ids) if view is not None else []})


_ROLLOUTS: web.AppKey[dict[str, dict[str, Any]]] = web.AppKey("rollouts", dict)
MAX_ROLLOUTS_SHOWN = 20


async def _post_rollout(request: web.Request) -> web.Response:
    """Progress a `tcpmesh rollout` reports (kept in memory for /ui; the rollout itself lives in the store)."""
    try:
        report = await request.json()
    except ValueError:
        return web.json_response({"error": "expected a JSON object"}, status=400)
    if not isinstance(report, dict) or not isinstance(report.get("name"), str):
        return web.json_response({"error": "expected a JSON object with a name"}, status=400)
    rollouts = request.app[_ROLLOUTS]
    rollouts.pop(report["name"], None)
    rollouts[report["name"]] = {**report, "updated": time.time()}
    while len(rollouts) > MAX_ROLLOUTS_SHOWN:
        del rollouts[next(iter(rollouts))]
    return web.json_response({"ok": True})


async def _get_rollouts(request: web.Request) -> web.Response:
    return web.json_response({"rollouts": list(reversed(request.app[_ROLLOUTS].values()))})


async def _ui(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})


async def _config_dump(request: web.Request) -> web.Response:
    cp = request.app[_CP]
    proxy = request.query.get("proxy", "")
    statuses = cp.xds.status()
    if not proxy and len({s.node_id for s in statuses}) == 1:
        proxy = statuses[0].node_id
    if not proxy:
        known = sorted({s.node_id for s in statuses})
        return web.json_response({"error": "give ?proxy=<id>", "proxies": known}, status=400)
    resources = cp.xds.resources(proxy)
    if not resources:
        return web.json_response({"error": f"proxy {proxy!r} is not connected"}, status=404)
    wanted = request.query.get("type", "all")
    kinds = list(_KINDS) if wanted == "all" else [wanted]
    out: dict[str, Any] = {}
    for kind in kinds:
        url = _KINDS.get(kind)
        if url is None:
            return web.json_response({"error": f"unknown type {kind!r}"}, status=400)
        by_name = resources.get(url, {})
        out[kind] = [message_to_dict(by_name[name]) for name in sorted(by_name)]
    return web.json_response(out)


async def _change(request: web.Request, delete: bool) -> web.Response:
    cp = request.app[_CP]
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return web.json_response({"ok": False, "problems": [{"text": "request body too large"}]}, status=413)
    source = request.query.get("source", "<stdin>")
    text, undecodable = decode_utf8(await request.read(), source)
    if text is None:
        assert undecodable is not None
        return web.json_response({"ok": False, "lines": [], "problems": [_problem_json(undecodable)]}, status=400)
    namespace = request.query.get("namespace") or None
    store = cp.store
    try:
        change = store.delete if delete else store.apply
        result = await asyncio.to_thread(change, text, source, namespace)
    except StoreUnavailable as exc:
        problem = {"text": f"the store is unavailable; nothing was changed: {exc}"}
        return web.json_response({"ok": False, "lines": [], "problems": [problem]}, status=503)
    if result.lines:
        # Serve the change now rather than after the watcher's debounce; the watcher reload is then a no-op.
        accepted, problems = await asyncio.to_thread(cp.reload)
        if not accepted:
            result.problems.extend(p for p in problems if p.is_error)
    # kubectl's codes: 409 Conflict for a stale resourceVersion or a resource the config directory owns.
    status = 200 if result.ok else 409 if result.conflict else 422
    return web.json_response(_result_json(result), status=status)


async def _apply(request: web.Request) -> web.Response:
    return await _change(request, delete=False)


async def _delete(request: web.Request) -> web.Response:
    return await _change(request, delete=True)


async def _get(request: web.Request) -> web.Response:
    cp = request.app[_CP]
    kind_text = request.query.get("kind", "")
    kind = resolve_kind(kind_text) if kind_text else None
    if kind_text and kind is None:
        return web.json_response({"error": f'the server doesn\'t have a resource type "{kind_text}"'}, status=400)
    args = (kind, request.query.get("name") or None, request.query.get("namespace") or None)
    try:
        items = await asyncio.to_thread(cp.store.get, *args)
    except StoreUnavailable as exc:
        return web.json_response({"error": str(exc)}, status=503)
    if request.query.get("content") == "1":
        # One Gateway API conversion for the whole answer: each status is a view of it.
        conversion = cp.config.gateway_api() if any(r.kind in GATEWAY_API_KINDS for r in items) else None
        return web.json_response(
            {"items": [{**record_json(r), "object": object_json(cp, r, conversion)} for r in items]}
        )
    return web.json_response({"items": [record_json(r) for r in items]})


def object_json(cp: ControlPlane, r: Record, conversion: Conversion | None = None) -> dict[str, Any]:
    """The stored resource as written, with the server's metadata and a status in Istio's form: `Accepted`
    (the control plane serves this generation) and `Reconciled` (every connected proxy has ACKed everything)."""
    loaded = yaml.load(r.body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    obj: dict[str, Any] = dict(loaded) if isinstance(loaded, dict) else {}
    meta = dict(obj.get("metadata") or {})
    meta.update(namespace=r.namespace, resourceVersion=str(r.mod_revision), generation=r.generation)
    obj["metadata"] = meta
    served = (
        any((x.meta.kind, x.meta.namespace, x.meta.name) == r.key for x in cp.config.resources()) and not cp.rejection
    )
    statuses = cp.xds.status()
    synced = all(t.state.value in ("SYNCED", "NOT_SENT") for st in statuses for t in st.types.values())

    def condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
        return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}

    rejected = cp.rejection
    obj = redact_object(obj)
    obj["status"] = {
        "observedGeneration": r.generation,
        "conditions": [
            condition(
                "Accepted",
                served,
                "Accepted" if served else "Rejected" if rejected else "Pending",
                "served by the control plane"
                if served
                else (
                    "the latest change was rejected: " + "; ".join(str(p) for p in rejected.problems[:3])
                    if rejected
                    else "not in the served config yet"
                ),
            ),
            condition(
                "Reconciled",
                served and synced,
                "Synced" if synced else "Pending",
                f"{len(statuses)} connected proxies ACKed the current config"
                if synced
                else "some proxy has not ACKed the current config",
            ),
        ],
    }
    if r.kind in GATEWAY_API_KINDS and served:
        # The status the Gateway API defines, computed from the served config as Istio's controller writes it.
        conversion = conversion or cp.config.gateway_api()
        status = object_status(conversion, r.kind, r.namespace, r.name, r.generation)
        if status is None:
            obj.pop("status")
        else:
            if r.kind == KUBE_GATEWAY:
                connected = _gateway_proxies(statuses, r.namespace, r.name)
                status = with_connected_proxies(status, r.name, connected)
            obj["status"] = status
    return obj


def build_app(cp: ControlPlane, policy: ApiPolicy) -> web.Application:
    """The API behind ``policy``'s checks (tcpmesh/apiauth.py): only /healthz, /readyz and /metrics need no token."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares(policy))
    app[_CP] = cp
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/debug/syncz", _status)
    app.router.add_get("/debug/config_dump", _config_dump)
    app.router.add_post("/api/apply", _apply)
    app.router.add_post("/api/delete", _delete)
    app.router.add_get("/api/resources", _get)
    app.router.add_get("/api/traffic", _traffic)
    app.router.add_get("/ui", _ui)
    app[_ROLLOUTS] = {}
    app.router.add_get("/api/rollouts", _get_rollouts)
    app.router.add_post("/api/rollouts", _post_rollout)
    return app
