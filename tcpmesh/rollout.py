"""Progressive delivery for TCP: the weight plan and the VirtualService edit of `tcpmesh rollout` (pure).

At a step of ``s`` %, the target subset gets ``s`` and the route's other destinations of the same host share the
rest in proportion to their starting weights (largest remainder, so the weights are integers summing to 100);
a destination to another host keeps its weight share untouched relative to the route (it is not part of the
rollout). The driver (commands/rollout.py) applies each step through the store, waits for every proxy's ACK and
gates on the new destination's connect failures and outlier ejections.

A Gateway API TCPRoute or TLSRoute has no subsets: its backends are Services, so the same plan shifts the
backendRefs' weights by backend name (every rule naming the target, or every rule when none does; the target is
added with the port the rule's backends share). Each weight is written out, 0 included: a Gateway API backend of
weight 0 gets no connections and stays listed, so a later drain can still name it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BackendPlan",
    "RolloutError",
    "RoutePlan",
    "as_applied",
    "backend_host",
    "plan_backends",
    "plan_routes",
    "step_weights",
    "with_backend_weights",
    "with_weights",
]


class RolloutError(ValueError):
    """The VirtualService cannot be rolled out as asked (no such route, subset, ...)."""


def step_weights(start: Mapping[str, int], target: str, percent: int) -> dict[str, int]:
    """Weights per subset at ``percent`` % for ``target``; the others keep their proportions."""
    if not 0 <= percent <= 100:
        raise RolloutError(f"step {percent}% is outside 0..100")
    others = {s: w for s, w in start.items() if s != target}
    rest = 100 - percent
    total = sum(others.values())
    if not others or rest == 0:
        shares = dict.fromkeys(others, 0)
    elif total == 0:
        # Only the target had weight: split the rest evenly over the others.
        base, extra = divmod(rest, len(others))
        shares = {s: base + (1 if i < extra else 0) for i, s in enumerate(others)}
    else:
        exact = {s: rest * w / total for s, w in others.items()}
        shares = {s: int(v) for s, v in exact.items()}
        left = rest - sum(shares.values())
        for s in sorted(others, key=lambda k: (-(exact[k] - shares[k]), k))[:left]:
            shares[s] += 1
    return {**shares, target: percent} if others or percent else {target: percent}


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """One `tcp:`/`tls:` route of the VirtualService that sends to the rolled-out host."""

    section: str
    """``tcp`` or ``tls``."""
    index: int
    host: str
    port: int | None
    start: Mapping[str, int]
    """subset → weight at the start ("" for a destination without subset)."""


def _subset(dest: Mapping[str, Any]) -> str:
    return str(dest.get("destination", {}).get("subset") or "")


def _weight(dest: Mapping[str, Any], count: int) -> int:
    return int(dest.get("weight", 100 if count == 1 else 0))


def plan_routes(vs: Mapping[str, Any], target: str, host: str | None = None) -> list[RoutePlan]:
    """The routes to roll out: those whose destinations name ``host`` (default: the first destination's host)."""
    spec = vs.get("spec") or {}
    plans: list[RoutePlan] = []
    for section in ("tcp", "tls"):
        for i, rule in enumerate(spec.get(section) or []):
            route = rule.get("route") or []
            if not route:
                continue
            wanted = host or str(route[0].get("destination", {}).get("host", ""))
            host = host or wanted
            mine = [d for d in route if d.get("destination", {}).get("host") == wanted]
            if not mine:
                continue
            if len(mine) != len(route):
                raise RolloutError(f"spec.{section}[{i}].route mixes {wanted} with other hosts; roll it out by hand")
            port = mine[0].get("destination", {}).get("port", {}).get("number")
            start = {_subset(d): _weight(d, len(route)) for d in mine}
            plans.append(RoutePlan(section, i, wanted, port, start))
    if not plans:
        raise RolloutError(f"no tcp or tls route of the VirtualService sends to {host or 'any host'}")
    return plans


def as_applied(vs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``vs`` as a user would apply it: the server-set metadata and the status dropped."""
    out = copy.deepcopy(dict(vs))
    meta = out.get("metadata") or {}
    for key in ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    out.pop("status", None)
    return out


def with_weights(vs: Mapping[str, Any], plans: Sequence[RoutePlan], target: str, percent: int) -> dict[str, Any]:
    """A copy of ``vs`` with each planned route at ``percent`` % for ``target`` (server-set metadata dropped)."""
    out = as_applied(vs)
    for plan in plans:
        route = out["spec"][plan.section][plan.index]["route"]
        weights = step_weights(plan.start, target, percent)
        mine: dict[str, dict[str, Any]] = {
            _subset(d): d for d in route if d.get("destination", {}).get("host") == plan.host
        }
        new_route = []
        for subset, weight in weights.items():
            dest = mine.get(subset)
            if dest is None:
                port = {"port": {"number": plan.port}} if plan.port else {}
                dest = {"destination": {"host": plan.host, **port, **({"subset": subset} if subset else {})}}
            new_route.append({**dest, "weight": weight})
        if len(new_route) == 1:
            new_route[0].pop("weight", None)  # a single destination takes everything; istiod wants no weight
        out["spec"][plan.section][plan.index]["route"] = new_route
    return out


@dataclass(frozen=True, slots=True)
class BackendPlan:
    """One rule of a TCPRoute or TLSRoute whose backendRefs the rollout shifts."""

    index: int
    start: Mapping[str, int]
    """backendRef name → weight at the start (Gateway API's default weight is 1)."""
    target: Mapping[str, Any]
    """The target's backendRef as it is, or as it will be added."""


def backend_host(ref: Mapping[str, Any], namespace: str, domain: str = "cluster.local") -> str:
    """The host a backendRef's clusters are named by: ``name.ns.svc.<domain>`` for a Service, the name for an
    Istio Hostname."""
    if ref.get("kind", "Service") == "Hostname":
        return str(ref["name"])
    return f"{ref['name']}.{ref.get('namespace') or namespace}.svc.{domain}"


def plan_backends(route: Mapping[str, Any], target: str) -> list[BackendPlan]:
    """The rules to shift toward backend ``target``."""
    rules = (route.get("spec") or {}).get("rules") or []
    named = [i for i, rule in enumerate(rules) if any(b.get("name") == target for b in rule.get("backendRefs") or [])]
    plans: list[BackendPlan] = []
    for i in named or range(len(rules)):
        refs = rules[i].get("backendRefs") or []
        if not refs:
            continue
        names = [str(b.get("name")) for b in refs]
        if len(set(names)) != len(names):
            raise RolloutError(f"spec.rules[{i}].backendRefs names a backend twice; roll it out by hand")
        mine = next((b for b in refs if b.get("name") == target), None)
        if mine is None:
            ports = {b.get("port") for b in refs}
            if len(ports) != 1 or None in ports:
                raise RolloutError(
                    f"spec.rules[{i}] has no backendRef {target!r} and its backends' ports differ: add it (weight 0) "
                    "first"
                )
            mine = {"name": target, "port": ports.pop()}
        start = {str(b["name"]): int(b.get("weight", 1)) for b in refs}
        plans.append(BackendPlan(i, start, mine))
    if not plans:
        raise RolloutError("the route has no rule with backendRefs")
    return plans


def with_backend_weights(
    route: Mapping[str, Any], plans: Sequence[BackendPlan], target: str, percent: int
) -> dict[str, Any]:
    """A copy of ``route`` with each planned rule at ``percent`` % for backend ``target`` (server-set metadata
    dropped)."""
    out = as_applied(route)
    for plan in plans:
        rule = out["spec"]["rules"][plan.index]
        weights = step_weights(plan.start, target, percent)
        by_name = {str(b["name"]): b for b in rule["backendRefs"]}
        by_name.setdefault(target, dict(plan.target))
        rule["backendRefs"] = [{**by_name[name], "weight": weight} for name, weight in weights.items()]
    return out
