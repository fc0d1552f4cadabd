"""Commands that talk to a running control plane over its HTTP API: apply, delete, get, status, dump --server.

`apply`/`delete`/`get` also work on a state dir's store directly (``--state-dir``), without a server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tcpmesh.apiclient import ServerError, request_json
from tcpmesh.apitoken import client_token
from tcpmesh.commands.offline import KINDS, render
from tcpmesh.httpapi import record_json
from tcpmesh.model.gatewayapi.resources import display_kind
from tcpmesh.model.gatewayapi.status import summary_lines
from tcpmesh.model.problems import MAX_SHOWN_PROBLEMS
from tcpmesh.model.yamlsource import decode_utf8
from tcpmesh.store import ApplyResult, open_store, resolve_kind
from tcpmesh.store.redact import redact_object

__all__ = [
    "add_change_arguments",
    "add_get_arguments",
    "add_status_arguments",
    "dump_from_server",
    "request_json",
    "run_apply",
    "run_delete",
    "run_get",
    "run_status",
]

DEFAULT_SERVER = os.environ.get("TCPMESH_SERVER", "127.0.0.1:15014")


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help=f"control plane HTTP address (default {DEFAULT_SERVER}, or $TCPMESH_SERVER); https://... for TLS",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="the API's bearer token (default $TCPMESH_TOKEN, else ./.tcpmesh/token for a loopback server)",
    )
    parser.add_argument(
        "--cacert", type=Path, default=os.environ.get("TCPMESH_CACERT") or None, help="CA for an https:// server"
    )


def _call(args: argparse.Namespace, path: str, body: bytes | None = None) -> tuple[int, Any]:
    """request_json with the command's server, token and CA; ServerError when the token cannot be read."""
    try:
        token = client_token(args.server, args.token_file)
    except ValueError as exc:
        raise ServerError(str(exc)) from exc
    code, payload = request_json(args.server, path, body=body, token=token, cafile=args.cacert)
    if code == 401:
        hint = "give the API token with --token-file or $TCPMESH_TOKEN"
        reason = payload.get("error") if isinstance(payload, dict) else None
        raise ServerError(f"the control plane at {args.server} refused the request: {reason or 'unauthorized'}; {hint}")
    return code, payload


def add_change_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        type=Path,
        required=True,
        help="YAML file or directory (repeatable; - for stdin)",
    )
    parser.add_argument("-n", "--namespace", default=None, help="namespace for resources without one")
    parser.add_argument(
        "--state-dir", type=Path, help="change the store in this state dir directly (no server may be running on it)"
    )
    _server_args(parser)


def _read_input(name: str, data: bytes) -> tuple[str, str]:
    text, problem = decode_utf8(data, name)
    if problem is not None:
        raise ValueError(str(problem))
    assert text is not None
    return name, text


def _inputs(paths: list[Path]) -> list[tuple[str, str]]:
    """(source, text) of each input; OSError or ValueError (not UTF-8, naming the file and line) when unreadable."""
    out = []
    for path in paths:
        if str(path) == "-":
            out.append(_read_input("<stdin>", sys.stdin.buffer.read()))
        elif path.is_dir():
            out.extend(
                _read_input(str(p), p.read_bytes())
                for p in sorted(path.iterdir())
                if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        else:
            out.append(_read_input(str(path), path.read_bytes()))
    return out


def _report(result: dict[str, Any]) -> int:
    for line in result.get("lines", []):
        print(line)
    problems = result.get("problems", [])
    for problem in problems[:MAX_SHOWN_PROBLEMS]:
        print(problem.get("text") or problem.get("message"), file=sys.stderr)
    more = int(result.get("more_problems", 0)) + max(0, len(problems) - MAX_SHOWN_PROBLEMS)
    if more:
        print(f"... and {more} more problems", file=sys.stderr)
    if "ok" not in result and result.get("error"):
        print(f"error: {result['error']}", file=sys.stderr)
    return 0 if result.get("ok") else 1


def _change(args: argparse.Namespace, delete: bool) -> int:
    try:
        inputs = _inputs(args.filename)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    status = 0
    for source, text in inputs:
        if args.state_dir is not None:
            try:
                store = open_store(None, args.state_dir)
            except OSError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            try:
                result: ApplyResult = (store.delete if delete else store.apply)(text, source, args.namespace)
            finally:
                store.close()
            payload = {"ok": result.ok, "lines": result.lines, "problems": [{"text": str(p)} for p in result.problems]}
        else:
            query = urllib.parse.urlencode({"source": source, "namespace": args.namespace or ""})
            try:
                _, payload = _call(args, f"/api/{'delete' if delete else 'apply'}?{query}", body=text.encode())
            except ServerError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        status = max(status, _report(payload))
    return status


def run_apply(args: argparse.Namespace) -> int:
    return _change(args, delete=False)


def run_delete(args: argparse.Namespace) -> int:
    return _change(args, delete=True)


def add_get_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind",
        help="gateway|virtualservice|destinationrule|serviceentry|workloadentry|service|secret|"
        "deployment, or Gateway API gtw|tcproute|tlsroute|gatewayclass|referencegrant "
        "(kubectl short names work: gw, vs, dr, se, we, svc, deploy)",
    )
    parser.add_argument("name", nargs="?")
    parser.add_argument("-n", "--namespace", default=None)
    parser.add_argument("--state-dir", type=Path, help="read the store in this state dir instead of a server")
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "yaml", "json"),
        default="table",
        help="yaml/json: the resources as stored, with resourceVersion, generation and (from a server) a status",
    )
    _server_args(parser)


def _objects(items: list[dict[str, Any]], output: str) -> str:
    objects = [i["object"] for i in items]
    if output == "json":
        return json.dumps(objects[0] if len(objects) == 1 else {"apiVersion": "v1", "kind": "List", "items": objects},
                          indent=2) + "\n"  # fmt: skip
    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)


def _stored_object(r: Any) -> dict[str, Any]:
    """A record read from the store directly: as written, with the store's metadata (no status: no server)."""
    loaded = yaml.safe_load(r.body)
    obj: dict[str, Any] = dict(loaded) if isinstance(loaded, dict) else {}
    meta = dict(obj.get("metadata") or {})
    meta.update(namespace=r.namespace, resourceVersion=str(r.mod_revision), generation=r.generation)
    obj["metadata"] = meta
    return redact_object(obj)


def run_get(args: argparse.Namespace) -> int:
    kind = resolve_kind(args.kind)
    if kind is None:
        print(f'error: the server doesn\'t have a resource type "{args.kind}"', file=sys.stderr)
        return 1
    if args.state_dir is not None:
        store = open_store(None, args.state_dir, writer=False)
        try:
            records = store.get(kind, args.name, args.namespace)
            items = [{**record_json(r), "object": _stored_object(r)} for r in records]
        finally:
            store.close()
    else:
        fields = {"kind": kind, "name": args.name or "", "namespace": args.namespace or ""}
        if args.output != "table":
            fields["content"] = "1"
        query = urllib.parse.urlencode(fields)
        try:
            code, payload = _call(args, f"/api/resources?{query}")
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if code != 200:
            print(f"error: {payload.get('error')}", file=sys.stderr)
            return 1
        items = payload["items"]
    if not items:
        where = f' "{args.name}"' if args.name else "s"
        print(f"No {display_kind(kind)}{where} found.", file=sys.stderr)
        return 1 if args.name else 0
    if args.output != "table":
        sys.stdout.write(_objects(items, args.output))
        return 0
    width = max(len(i["name"]) for i in items) + 3
    print(f"{'NAMESPACE':<20}{'NAME':<{width}}FILE")
    for item in items:
        print(f"{item['namespace']:<20}{item['name']:<{width}}{item['file']}")
    return 0


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument(
        "--traffic",
        action="store_true",
        help="per proxy and route: configured weights next to the observed share of new connections (TCP) or "
        "requests (HTTP) (95%% interval), active connections or requests, connect failures or 5xx, from the "
        "proxies' own stats",
    )
    _server_args(parser)


def _short(version: str | None) -> str:
    return (version or "-")[:12]


def _fetch(args: argparse.Namespace, path: str) -> tuple[int | None, Any]:
    """GET `path`: (exit code, None) when done — it failed (said on stderr) or `-o json` printed it — else
    (None, payload) for the caller's table."""
    try:
        _, payload = _call(args, path)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1, None
    if args.output == "json":
        print(json.dumps(payload, indent=2))
        return 0, None
    return None, payload


def run_status(args: argparse.Namespace) -> int:
    if args.traffic:
        return _run_traffic(args)
    done, status = _fetch(args, "/debug/syncz")
    if done is not None:
        return done
    print(f"config generation {status['generation']}, {status['resources']} resources")
    if status.get("rejected"):
        rejected = status["rejected"]
        age = time.time() - rejected["at"]
        print(f"LATEST CHANGE REJECTED {age:.0f}s ago (still serving generation {status['generation']}):")
        for problem in rejected["problems"]:
            print(f"  {problem['text']}")
        if rejected.get("more_problems"):
            print(f"  ... and {rejected['more_problems']} more problems")
    if status.get("store_available") is False:
        print(f"STORE UNAVAILABLE ({status.get('store')}): serving the last snapshot; changes are refused")
    for file, problems in (status.get("input_problems") or {}).items():
        print(f"CONFIG DIR FILE NOT APPLIED (its last good content is served): {file}")
        for problem in problems:
            print(f"  {problem['text']}")
    width = max([len(p["id"]) for p in status["proxies"]] + [5]) + 2
    print(f"{'PROXY':<{width}}{'CDS':<22}{'EDS':<22}{'LDS':<22}{'ECDS':<22}".rstrip())
    for proxy in status["proxies"]:
        cells = []
        for short in ("Cluster", "ClusterLoadAssignment", "Listener", "TypedExtensionConfig"):
            t = proxy["types"].get(short)
            cells.append("-" if t is None else f"{t['state']} {_short(t['acked'])}")
        print(f"{proxy['id']:<{width}}" + "".join(f"{c:<22}" for c in cells).rstrip())
        for short, t in proxy["types"].items():
            nack = t.get("last_nack")
            if nack and t["state"] == "ERROR":
                print(f"  NACK {short} version {_short(nack['version'])}: {nack['message']}")
    for cred in status.get("credentials", []):
        if not cred["served"]:
            print(f"SECRET NOT SERVED to {cred['proxy']}: {cred['name']}: {cred['problem']}")
    gateway_api = summary_lines(status.get("gateway_api") or [])
    if gateway_api:
        print("GATEWAY API")
        for line in gateway_api:
            print(f"  {line}")
    for node_id in status.get("duplicate_ids", []):
        streams = sum(1 for p in status["proxies"] if p["id"] == node_id)
        print(f"DUPLICATE node id {node_id}: {streams} streams claim it (two proxies share an id, or one poses as it)")
    if not status["proxies"]:
        print("(no proxies connected)")
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _run_traffic(args: argparse.Namespace) -> int:
    done, payload = _fetch(args, "/api/traffic")
    if done is not None:
        return done
    for proxy in payload.get("proxies", []):
        age = proxy.get("age_s")
        print(f"{proxy['id']}  (stats {'not reported yet' if age is None else f'{age:.0f}s old'})")
        for route in proxy["routes"]:
            flag = "  MISMATCH" if route["mismatch"] else ""
            config = route.get("config")
            source = f" ({config['kind']} {config['namespace']}/{config['name']})" if config else ""
            http = route.get("protocol") == "http"
            counted = f"{route['requests']} requests" if http else f"{route['connections']} new connections"
            shared = "  (shares clusters: not flagged)" if route.get("shared") else ""
            print(f"  route {route['route']}{source}: {counted} since version "
                  f"{_short(route['version'])}{flag}{shared}")  # fmt: skip
            print(f"    {'DESTINATION':<58}{'WEIGHT':>7}{'CONFIGURED':>11}{'OBSERVED':>10}{'95% INTERVAL':>17}"
                  f"{'COUNT':>7}{'ACTIVE':>7}{'5XX' if http else 'FAILED':>7}")  # fmt: skip
            for d in route["destinations"]:
                low, high = d["interval"]
                interval = f"{_pct(low)}–{_pct(high)}" if d["observed"] is not None else "-"
                mark = "  <- outside" if d["mismatch"] else ""
                failed = d["errors_5xx"] if http else d["connect_fail"]
                print(f"    {d['cluster']:<58}{d['weight']:>7}{_pct(d['configured']):>11}{_pct(d['observed']):>10}"
                      f"{interval:>17}{d['count']:>7}{d['active']:>7}{failed:>7}{mark}")  # fmt: skip
                if d.get("shared_with"):
                    print(f"      also counted for: {', '.join(d['shared_with'])}")
    if not payload.get("proxies"):
        print("(no proxies connected)")
    return 0


def dump_from_server(args: argparse.Namespace) -> int:
    query = {"type": args.type}
    if args.proxy and args.proxy not in ("gateway", "sidecar"):
        query["proxy"] = args.proxy
    try:
        code, payload = _call(args, "/debug/config_dump?" + urllib.parse.urlencode(query))
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if code != 200:
        print(f"error: {payload.get('error')}", file=sys.stderr)
        for proxy in payload.get("proxies", []):
            print(f"  {proxy}", file=sys.stderr)
        return 1
    data = {kind: payload[kind] for kind in KINDS[args.type] if kind in payload}
    sys.stdout.write(render(data, args.output))
    return 0
