"""`tcpmesh drain vs/NAME --subset v1 --over 5m`: close the subset's live connections spread over a period.

In the connection-preserving mode a weight change reaches new connections only: connections opened before it
stay where they were. A drain recycles them on purpose. It stamps the VirtualService with
``drain.tcpmesh.io/<subset>`` (``since`` = the control plane's clock now, ``fraction`` = 0) and raises the
fraction to 1 over the period, one apply per step through the store. The proxies' drain filter closes a
connection to the subset once the fraction passes its hash, at its next read; connections opened after
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
from tcpmesh.commands.vs_steps import Api, all_acked, duration_arg, fetch_virtual_service, refusal, vs_name
from tcpmesh.model.drain import drain_annotation, format_since

__all__ = ["add_arguments", "run"]

CONFLICT_RETRIES = 10


class DrainError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="vs/NAME", help="the VirtualService whose subset to drain (vs/NAME or NAME)")
    parser.add_argument("--subset", required=True, help="the subset whose connections to close")
    parser.add_argument("--over", type=duration_arg, default=300.0, help="spread the closes over this period (5m)")
    parser.add_argument("--step", type=duration_arg, help="raise the fraction this often (default: period/100, ≥ 1s)")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--ack-timeout", type=duration_arg, default=30.0, help="wait this long for every ACK (30s)")
    _server_args(parser)


class _Drain:
    def __init__(self, args: argparse.Namespace, api: Api) -> None:
        self.args = args
        self.api = api
        self.name = vs_name(args.target)

    def fetch(self) -> dict[str, Any]:
        vs = fetch_virtual_service(self.api, self.args.namespace, self.name)
        if vs is None:
            raise DrainError(f"VirtualService {self.args.namespace}/{self.name} not found")
        return vs

    def set_fraction(self, since: str, fraction: float) -> None:
        """Write the annotation on the VirtualService as it is now (compare-and-swap: a concurrent edit of the
        VirtualService is re-read, never overwritten)."""
        key, value = drain_annotation(self.args.subset, since, fraction)
        for _ in range(CONFLICT_RETRIES):
            vs = self.fetch()
            vs.pop("status", None)
            meta = vs.setdefault("metadata", {})
            meta.setdefault("annotations", {})[key] = value
            body = yaml.safe_dump(vs, sort_keys=False).encode()
            code, payload = self.api(f"/api/apply?source=drain&namespace={self.args.namespace}", body)
            if code == 200:
                return
            if code != 409:
                raise DrainError(refusal(code, payload))
        raise DrainError(f"the VirtualService kept changing: {CONFLICT_RETRIES} conflicts in a row")

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


def _start(drain: _Drain) -> str:
    """Check that the drain can work; the control plane's time as ``since``."""
    _, status = drain.api("/debug/syncz", None)
    if not status.get("connection_preserving", True):
        raise DrainError("the control plane serves istiod's inline form (--inline-weights), which has no drain filter")
    vs = drain.fetch()
    if drain.args.subset not in _routed_subsets(vs):
        raise DrainError(f"no tcp or tls route of {drain.args.namespace}/{drain.name} has subset {drain.args.subset!r}")
    return format_since(datetime.fromtimestamp(float(status["time"]), UTC))


def run(args: argparse.Namespace, api: Api | None = None) -> int:
    call: Api = api or (lambda path, body: _call(args, path, body))
    drain = _Drain(args, call)
    over = max(0.0, args.over)
    step = args.step if args.step else max(1.0, over / 100)
    try:
        since = _start(drain)
    except (DrainError, ServerError) as exc:
        print(f"tcpmesh drain: {exc}", file=sys.stderr)
        return 1
    print(f"draining subset {args.subset} of {drain.name}: connections opened before {since} "
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
    print(f"drained: every connection to {args.subset} opened before {since} closes at its next read; "
          "new connections are not affected")  # fmt: skip
    return 0
