"""`tcpmesh drain vs/NAME --subset v1 --over 5m` (or `tcproute/NAME --backend SVC`): close the subset's or the
backend's live connections spread over a period.

In the connection-preserving mode a weight change reaches new connections only: connections opened before it
stay where they were. A drain recycles them on purpose. It stamps the VirtualService with
``drain.tcpmesh.io/<subset>`` (a TCPRoute or TLSRoute with ``drain.tcpmesh.io/<backend>``: Gateway API backends
are Services, not subsets) with ``since`` = the control plane's clock now and ``fraction`` = 0, and raises the
fraction to 1 over the period, one apply per step through the store. The proxies' drain filter closes a
connection to the subset (backend) once the fraction passes its hash, at its next read; connections opened after
``since`` are never touched, so clients that reconnect follow the current weights. Each step is an EDS update:
no listener changes, nothing else drains. Ctrl-C leaves the fraction reached so far.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

import yaml

from tcpmesh.apiclient import ServerError
from tcpmesh.commands.client import _call, _server_args
from tcpmesh.commands.vs_steps import ROUTE_KINDS, Api, all_acked, duration_arg, fetch_object, parse_target, refusal
from tcpmesh.model.drain import drain_annotation, format_since

__all__ = ["add_arguments", "run"]

CONFLICT_RETRIES = 10


class DrainError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="vs/NAME|tcproute/NAME|tlsroute/NAME",
        help="the VirtualService whose subset, or the Gateway API route whose backend, to drain (NAME: a vs)",
    )
    parser.add_argument("--subset", help="the subset whose connections to close (a VirtualService)")
    parser.add_argument("--backend", help="the backendRef (Service name) whose connections to close (a route)")
    parser.add_argument("--over", type=duration_arg, default=300.0, help="spread the closes over this period (5m)")
    parser.add_argument("--step", type=duration_arg, help="raise the fraction this often (default: period/100, ≥ 1s)")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--ack-timeout", type=duration_arg, default=30.0, help="wait this long for every ACK (30s)")
    _server_args(parser)


class _Drain:
    def __init__(self, args: argparse.Namespace, api: Api) -> None:
        self.args = args
        self.api = api
        self.kind, self.name = parse_target(args.target)
        route = self.kind in ROUTE_KINDS
        flag, other = ("backend", "subset") if route else ("subset", "backend")
        if not getattr(args, flag) or getattr(args, other):
            raise DrainError(f"a {self.kind} is drained with --{flag} (a {'route' if route else 'VirtualService'} "
                             f"has no {other}s)")  # fmt: skip
        self.what: str = args.backend if route else args.subset
        """The subset or the backend (the annotation's name part)."""

    def fetch(self) -> dict[str, Any]:
        obj = fetch_object(self.api, self.kind, self.args.namespace, self.name)
        if obj is None:
            raise DrainError(f"{self.kind} {self.args.namespace}/{self.name} not found")
        return obj

    def set_fraction(self, since: str, fraction: float) -> None:
        """Write the annotation on the resource as it is now (compare-and-swap: a concurrent edit of it is re-read,
        never overwritten)."""
        key, value = drain_annotation(self.what, since, fraction)
        for _ in range(CONFLICT_RETRIES):
            obj = self.fetch()
            obj.pop("status", None)
            meta = obj.setdefault("metadata", {})
            meta.setdefault("annotations", {})[key] = value
            body = yaml.safe_dump(obj, sort_keys=False).encode()
            code, payload = self.api(f"/api/apply?source=drain&namespace={self.args.namespace}", body)
            if code == 200:
                return
            if code != 409:
                raise DrainError(refusal(code, payload))
        raise DrainError(f"the {self.kind} kept changing: {CONFLICT_RETRIES} conflicts in a row")

    def wait_acked(self) -> None:
        _, status = self.api("/debug/syncz", None)
        if not all_acked(self.api, int(status["generation"]), self.args.ack_timeout):
            raise DrainError(f"not every proxy ACKed the drain within {self.args.ack_timeout:g}s")


def _routed_subsets(vs: dict[str, Any]) -> set[str]:
    spec = vs.get("spec") or {}
    return {
        (d.get("destination") or {}).get("subset") or ""
        for section in ("tcp", "tls")
        for route in spec.get(section) or []
        for d in route.get("route") or []
    }


def _backends(route: dict[str, Any]) -> set[str]:
    """The backendRef names of a TCPRoute or TLSRoute (weight 0 included: what a rollout left behind)."""
    rules = (route.get("spec") or {}).get("rules") or []
    return {str(b.get("name")) for rule in rules for b in rule.get("backendRefs") or [] if isinstance(b, dict)}


def _start(drain: _Drain) -> str:
    """Check that the drain can work; the control plane's time as ``since``."""
    _, status = drain.api("/debug/syncz", None)
    if not status.get("connection_preserving", True):
        raise DrainError("the control plane serves istiod's inline form (--inline-weights), which has no drain filter")
    obj = drain.fetch()
    where = f"{drain.args.namespace}/{drain.name}"
    if drain.kind in ROUTE_KINDS:
        if drain.what not in _backends(obj):
            raise DrainError(f"no backendRef of {drain.kind} {where} is named {drain.what!r}")
    elif drain.what not in _routed_subsets(obj):
        raise DrainError(f"no tcp or tls route of {where} has subset {drain.what!r}")
    return format_since(datetime.fromtimestamp(float(status["time"]), UTC))


def run(args: argparse.Namespace, api: Api | None = None) -> int:
    call: Api = api or (lambda path, body: _call(args, path, body))
    over = max(0.0, args.over)
    step = args.step if args.step else max(1.0, over / 100)
    try:
        drain = _Drain(args, call)
        since = _start(drain)
    except (DrainError, ServerError, ValueError) as exc:
        print(f"tcpmesh drain: {exc}", file=sys.stderr)
        return 1
    noun = "backend" if drain.kind in ROUTE_KINDS else "subset"
    print(f"draining {noun} {drain.what} of {drain.name}: connections opened before {since} "
          f"close spread over {over:g}s (fraction raised every {step:g}s)", flush=True)  # fmt: skip
    fraction = 0.0
    reported = -1
    start = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - start
            fraction = 1.0 if over == 0 or elapsed >= over else elapsed / over
            drain.set_fraction(since, fraction)
            if int(fraction * 10) > reported:
                reported = int(fraction * 10)
                print(f"  {100 * fraction:.0f}% of the old connections selected", flush=True)
            if fraction >= 1.0:
                break
            time.sleep(max(0.0, min(step, start + over - time.monotonic())))
        drain.wait_acked()
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: left at {100 * fraction:.0f}% (the rest of the old connections stay open)", file=sys.stderr
        )
        return 130
    except (DrainError, ServerError) as exc:
        print(f"tcpmesh drain: {exc} (left at {100 * fraction:.0f}%)", file=sys.stderr)
        return 1
    print(f"drained: every connection to {drain.what} opened before {since} closes at its next read; "
          "new connections are not affected")  # fmt: skip
    return 0
