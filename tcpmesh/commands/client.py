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

from tcpmesh.commands.offline import KINDS, render
from tcpmesh.httpapi import record_json
from tcpmesh.store import ApplyResult, open_store, resolve_kind

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


class ServerError(Exception):
    pass


def request_json(server: str, path: str, *, body: bytes | None = None, timeout: float = 30.0) -> tuple[int, Any]:
    url = f"http://{server}{path}" if "://" not in server else f"{server}{path}"
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return exc.code, json.loads(payload or b"null")
        except json.JSONDecodeError:
            return exc.code, {"error": payload.decode(errors="replace")}
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerError(f"cannot reach the control plane at {server}: {reason}") from exc


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help=f"control plane HTTP address (default {DEFAULT_SERVER}, or $TCPMESH_SERVER)",
    )


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


def _inputs(paths: list[Path]) -> list[tuple[str, str]]:
    out = []
    for path in paths:
        if str(path) == "-":
            out.append(("<stdin>", sys.stdin.read()))
        elif path.is_dir():
            out.extend(
                (str(p), p.read_text(encoding="utf-8"))
                for p in sorted(path.iterdir())
                if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        else:
            out.append((str(path), path.read_text(encoding="utf-8")))
    return out


def _report(result: dict[str, Any]) -> int:
    for line in result.get("lines", []):
        print(line)
    for problem in result.get("problems", []):
        print(problem.get("text") or problem.get("message"), file=sys.stderr)
    return 0 if result.get("ok") else 1


def _change(args: argparse.Namespace, delete: bool) -> int:
    try:
        inputs = _inputs(args.filename)
    except OSError as exc:
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
                _, payload = request_json(
                    args.server, f"/api/{'delete' if delete else 'apply'}?{query}", body=text.encode()
                )
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
        help="gateway|virtualservice|destinationrule|serviceentry|workloadentry|service|"
        "deployment (kubectl short names work: gw, vs, dr, se, we, svc, deploy)",
    )
    parser.add_argument("name", nargs="?")
    parser.add_argument("-n", "--namespace", default=None)
    parser.add_argument("--state-dir", type=Path, help="read the store in this state dir instead of a server")
    _server_args(parser)


def run_get(args: argparse.Namespace) -> int:
    kind = resolve_kind(args.kind)
    if kind is None:
        print(f'error: the server doesn\'t have a resource type "{args.kind}"', file=sys.stderr)
        return 1
    if args.state_dir is not None:
        store = open_store(None, args.state_dir, writer=False)
        try:
            items = [record_json(r) for r in store.get(kind, args.name, args.namespace)]
        finally:
            store.close()
    else:
        query = urllib.parse.urlencode({"kind": kind, "name": args.name or "", "namespace": args.namespace or ""})
        try:
            code, payload = request_json(args.server, f"/api/resources?{query}")
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if code != 200:
            print(f"error: {payload.get('error')}", file=sys.stderr)
            return 1
        items = payload["items"]
    if not items:
        where = f' "{args.name}"' if args.name else "s"
        print(f"No {kind}{where} found.", file=sys.stderr)
        return 1 if args.name else 0
    width = max(len(i["name"]) for i in items) + 3
    print(f"{'NAMESPACE':<20}{'NAME':<{width}}FILE")
    for item in items:
        print(f"{item['namespace']:<20}{item['name']:<{width}}{item['file']}")
    return 0


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    _server_args(parser)


def _short(version: str | None) -> str:
    return (version or "-")[:12]


def run_status(args: argparse.Namespace) -> int:
    try:
        _, status = request_json(args.server, "/debug/syncz")
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(status, indent=2))
        return 0
    print(f"config generation {status['generation']}, {status['resources']} resources")
    if status.get("rejected"):
        rejected = status["rejected"]
        age = time.time() - rejected["at"]
        print(f"LATEST CHANGE REJECTED {age:.0f}s ago (still serving generation {status['generation']}):")
        for problem in rejected["problems"]:
            print(f"  {problem['text']}")
    if status.get("store_available") is False:
        print(f"STORE UNAVAILABLE ({status.get('store')}): serving the last snapshot; changes are refused")
    for file, problems in (status.get("input_problems") or {}).items():
        print(f"CONFIG DIR FILE NOT APPLIED (its last good content is served): {file}")
        for problem in problems:
            print(f"  {problem['text']}")
    width = max([len(p["id"]) for p in status["proxies"]] + [5]) + 2
    print(f"{'PROXY':<{width}}{'CDS':<22}{'EDS':<22}{'LDS':<22}".rstrip())
    for proxy in status["proxies"]:
        cells = []
        for short in ("Cluster", "ClusterLoadAssignment", "Listener"):
            t = proxy["types"].get(short)
            cells.append("-" if t is None else f"{t['state']} {_short(t['acked'])}")
        print(f"{proxy['id']:<{width}}{cells[0]:<22}{cells[1]:<22}{cells[2]:<22}".rstrip())
        for short, t in proxy["types"].items():
            nack = t.get("last_nack")
            if nack and t["state"] == "ERROR":
                print(f"  NACK {short} version {_short(nack['version'])}: {nack['message']}")
    if not status["proxies"]:
        print("(no proxies connected)")
    return 0


def dump_from_server(args: argparse.Namespace) -> int:
    query = {"type": args.type}
    if args.proxy and args.proxy not in ("gateway", "sidecar"):
        query["proxy"] = args.proxy
    try:
        code, payload = request_json(args.server, "/debug/config_dump?" + urllib.parse.urlencode(query))
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
