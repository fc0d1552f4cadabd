"""`tcpmesh rollout vs/NAME --to SUBSET --steps 10,25,50,100 --interval 30s`: shift weights step by step. A
Gateway API route shifts its backendRefs' weights instead: `tcpmesh rollout tcproute/NAME --to SERVICE ...`.

Each step is applied through the store (the HTTP API), then the rollout waits until every connected proxy has
ACKed it and watches the new destination for the step's interval in the proxies' own stats (`/api/traffic`):
its connect failures over its new connections, and its outlier ejections. A failed gate rolls the routes back
to their starting weights and says why; Ctrl-C stops and leaves the last completed step in place.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from tcpmesh.apiclient import ServerError
from tcpmesh.commands.client import _call, _server_args
from tcpmesh.commands.vs_steps import ROUTE_KINDS, Api, all_acked, duration_arg, fetch_object, parse_target, refusal
from tcpmesh.rollout import (
    BackendPlan,
    RolloutError,
    RoutePlan,
    as_applied,
    backend_host,
    plan_backends,
    plan_routes,
    with_backend_weights,
    with_weights,
)
from tcpmesh.translator.names import cluster_name, resolve_short_name

__all__ = ["add_arguments", "run"]


def _steps(text: str) -> list[int]:
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected percentages such as 10,25,50,100, got {text!r}") from None
    if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise argparse.ArgumentTypeError("steps must be increasing percentages in 1..100")
    return steps


def _rate(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("--max-failure-rate must be in 0..100%")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="vs/NAME|tcproute/NAME|tlsroute/NAME",
        help="the VirtualService, or the Gateway API route, to shift (NAME: a vs)",
    )
    parser.add_argument(
        "--to", required=True, metavar="SUBSET|BACKEND", help="the subset (a route: the backendRef) that takes over"
    )
    parser.add_argument("--steps", type=_steps, default=[10, 25, 50, 100], help="percentages (default 10,25,50,100)")
    parser.add_argument("--interval", type=duration_arg, default=30.0, help="watch each step this long (default 30s)")
    parser.add_argument(
        "--max-failure-rate",
        type=_rate,
        default=0.01,
        help="connect failures / new connections of the new destination above which it rolls back (default 1%%)",
    )
    parser.add_argument(
        "--host", help="a VirtualService's destination host to shift (default: the route's first destination)"
    )
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--ack-timeout", type=duration_arg, default=30.0, help="wait this long for every ACK (30s)")
    _server_args(parser)


class _Rollout:
    def __init__(self, args: argparse.Namespace, api: Api) -> None:
        self.args = args
        self.api = api
        self.kind, self.name = parse_target(args.target)

    def report(self, **progress: Any) -> None:
        """Tell the control plane how far the rollout is (shown on /ui); a failure to report changes nothing."""
        name = f"{self.args.namespace}/{self.name}"
        if self.kind in ROUTE_KINDS:
            name = f"{self.kind} {name}"  # apart from a VirtualService of the same name
        body = json.dumps({"name": name, "to": self.args.to, "steps": self.args.steps, **progress}).encode()
        with contextlib.suppress(ServerError):
            self.api("/api/rollouts", body)

    def fetch(self) -> dict[str, Any]:
        obj = fetch_object(self.api, self.kind, self.args.namespace, self.name)
        if obj is None:
            raise RolloutError(f"{self.kind} {self.args.namespace}/{self.name} not found")
        return obj

    def apply(self, obj: dict[str, Any]) -> int:
        body = yaml.safe_dump(obj, sort_keys=False).encode()
        code, payload = self.api(f"/api/apply?source=rollout&namespace={self.args.namespace}", body)
        if code != 200:
            raise RolloutError(refusal(code, payload))
        _, status = self.api("/debug/syncz", None)
        return int(status["generation"])

    def wait_acked(self, generation: int) -> None:
        if not all_acked(self.api, generation, self.args.ack_timeout):
            raise RolloutError(f"not every proxy ACKed the step within {self.args.ack_timeout:g}s")

    def gate(self, clusters: set[str]) -> str | None:
        """Why the new destination fails its gate now, or None."""
        _, payload = self.api("/api/traffic", None)
        for proxy in payload.get("proxies", []):
            for route in proxy["routes"]:
                for d in route["destinations"]:
                    if d["cluster"] not in clusters:
                        continue
                    if d["ejections_active"]:
                        return f"{d['cluster']} has {d['ejections_active']} outlier-ejected hosts on {proxy['id']}"
                    if d["count"] and d["connect_fail"] / d["count"] > self.args.max_failure_rate:
                        rate, limit = d["connect_fail"] / d["count"], self.args.max_failure_rate
                        failed = f"{d['connect_fail']} connect failures in {d['count']} new connections"
                        return f"{d['cluster']}: {failed} ({100 * rate:.1f}% > {100 * limit:g}%) on {proxy['id']}"
        return None

    def watch(self, clusters: set[str]) -> str | None:
        end = time.monotonic() + self.args.interval
        while True:
            reason = self.gate(clusters)
            if reason is not None or time.monotonic() >= end:
                return reason
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))


def _new_clusters(plans: list[RoutePlan], target: str, namespace: str) -> set[str]:
    """The clusters of the target subset, named as the translator names them (short hosts resolved)."""
    return {cluster_name(p.port or 0, target, resolve_short_name(p.host, namespace)) for p in plans}


def _backend_clusters(plans: list[BackendPlan], namespace: str) -> set[str]:
    """The clusters of the target backend (Gateway API backends have no subsets)."""
    return {cluster_name(int(p.target["port"]), "", backend_host(p.target, namespace)) for p in plans}


_Step = Callable[[int], dict[str, Any]]


def _plan(args: argparse.Namespace, kind: str, original: dict[str, Any]) -> tuple[_Step, set[str], str]:
    """(the resource at a step's percentage, the target's clusters, the starting weights as text)."""
    namespace = original.get("metadata", {}).get("namespace") or args.namespace
    if kind in ROUTE_KINDS:
        if args.host:
            raise RolloutError("--host is for a VirtualService: a route's backends are named by --to")
        backends = plan_backends(original, args.to)
        return (
            lambda percent: with_backend_weights(original, backends, args.to, percent),
            _backend_clusters(backends, namespace),
            json.dumps([dict(p.start) for p in backends]),
        )
    plans = plan_routes(original, args.to, args.host)
    return (
        lambda percent: with_weights(original, plans, args.to, percent),
        _new_clusters(plans, args.to, namespace),
        json.dumps([dict(p.start) for p in plans]),
    )


def _interrupted(rollout: _Rollout, done: int, applied: int, last_completed: Callable[[], dict[str, Any]]) -> int:
    """Ctrl-C: leave the last step that passed its gate. A later step already applied (still being watched)
    is put back to it, so what stays is a step that was watched for its whole interval."""
    if applied != done:
        try:
            rollout.apply(last_completed())
        except (RolloutError, ServerError) as exc:
            print(f"\ninterrupted at {applied}%; putting back {done}% failed: {exc}", file=sys.stderr)
            rollout.report(state="interrupted", done=applied, reason=str(exc))
            return 130
        print(f"\ninterrupted while watching {applied}%: put back the last completed step ({done}%)", file=sys.stderr)
    else:
        print(f"\ninterrupted: left at the last completed step ({done}%)", file=sys.stderr)
    rollout.report(state="interrupted", done=done)
    return 130


def run(args: argparse.Namespace, api: Api | None = None) -> int:
    call: Api = api or (lambda path, body: _call(args, path, body))
    try:
        rollout = _Rollout(args, call)
        original = rollout.fetch()
        step, clusters, start_weights = _plan(args, rollout.kind, original)
    except (RolloutError, ServerError, ValueError) as exc:
        print(f"tcpmesh rollout: {exc}", file=sys.stderr)
        return 1
    print(f"rolling {rollout.name} to {args.to} in steps {','.join(map(str, args.steps))}%, "
          f"{args.interval:g}s each; gate: connect failures <= {100 * args.max_failure_rate:g}%")  # fmt: skip
    done = 0
    applied = 0  # the step whose weights are in the store (it may not have passed its gate yet)
    try:
        for percent in args.steps:
            rollout.report(state="applying", step=percent, done=done)
            generation = rollout.apply(step(percent))
            applied = percent
            rollout.wait_acked(generation)
            print(f"  step {percent}%: applied and ACKed by every proxy (generation {generation})", flush=True)
            rollout.report(state="watching", step=percent, done=done)
            reason = rollout.watch(clusters)
            if reason is not None:
                print(f"  gate failed at {percent}%: {reason}", flush=True)
                rollout.apply(as_applied(original))
                print(f"rolled back to the starting weights: {start_weights}")
                rollout.report(state="rolled back", step=percent, done=0, reason=reason)
                return 1
            done = percent
    except KeyboardInterrupt:
        return _interrupted(rollout, done, applied, lambda: as_applied(original) if done == 0 else step(done))
    except (RolloutError, ServerError) as exc:
        print(f"tcpmesh rollout: {exc} (left at the last completed step, {done}%)", file=sys.stderr)
        rollout.report(state="failed", done=done, reason=str(exc))
        return 1
    print(f"rollout complete: {rollout.name} sends {done}% to {args.to}")
    rollout.report(state="complete", done=done)
    return 0
