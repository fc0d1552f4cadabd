"""The `tcpmesh` command line (kubectl / istioctl habits)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

__all__ = ["COMMANDS", "build_parser", "main"]

Runner = Callable[[argparse.Namespace], int]


class Command(NamedTuple):
    name: str
    help: str
    module: str
    add_arguments: str
    """The module's function that adds the command's arguments to its parser."""
    run: str


COMMANDS = (
    Command(
        "validate",
        "check Istio/Kubernetes YAML the way istiod's webhook would",
        "tcpmesh.commands.offline",
        "add_validate_arguments",
        "run_validate",
    ),
    Command(
        "analyze",
        "cross-resource findings (unknown gateway, host or subset, ignored VirtualServices, ...)",
        "tcpmesh.commands.analyze",
        "add_arguments",
        "run",
    ),
    Command(
        "dump",
        "print the Envoy config generated for a proxy (offline from YAML, or --server)",
        "tcpmesh.commands.offline",
        "add_dump_arguments",
        "run_dump",
    ),
    Command(
        "up",
        "run control plane, Envoy gateway and echo backends locally (Ctrl-C stops all)",
        "tcpmesh.commands.up",
        "add_arguments",
        "run",
    ),
    Command(
        "serve",
        "run the control plane alone: ADS, HTTP API and metrics over a config directory",
        "tcpmesh.commands.serve",
        "add_arguments",
        "run",
    ),
    Command(
        "apply",
        "validate and apply resources to the config store (like kubectl apply -f)",
        "tcpmesh.commands.client",
        "add_change_arguments",
        "run_apply",
    ),
    Command(
        "delete",
        "delete resources from the config store (like kubectl delete -f)",
        "tcpmesh.commands.client",
        "add_change_arguments",
        "run_delete",
    ),
    Command(
        "get",
        "list resources in the config store",
        "tcpmesh.commands.client",
        "add_get_arguments",
        "run_get",
    ),
    Command(
        "status",
        "connected proxies: versions sent and ACKed per type, last NACK",
        "tcpmesh.commands.client",
        "add_status_arguments",
        "run_status",
    ),
    Command(
        "bootstrap",
        "print an Envoy bootstrap for this control plane (one or several replicas)",
        "tcpmesh.commands.bootstrap",
        "add_arguments",
        "run",
    ),
    Command(
        "rollout",
        "shift a VirtualService to a subset (a TCPRoute/TLSRoute to a backend) step by step, gated on the new "
        "destination's connect failures",
        "tcpmesh.commands.rollout",
        "add_arguments",
        "run",
    ),
    Command(
        "drain",
        "close a subset's (a route backend's) live connections spread over a period (connection-preserving mode), "
        "so they rebalance",
        "tcpmesh.commands.drain",
        "add_arguments",
        "run",
    ),
    Command(
        "probe",
        "open N connections to HOST:PORT and print the split of replies by first word (one/two) with a 95%% interval"
        " (--http: requests, by HTTP echo version)",
        "tcpmesh.probe",
        "add_arguments",
        "run",
    ),
    Command(
        "load",
        "send N HTTP requests over C concurrent connections (fortio load -c C -n N) and count the status codes",
        "tcpmesh.load",
        "add_arguments",
        "run",
    ),
    Command(
        "echo",
        "a TCP echo server (Istio tcp-echo or the banner test server)",
        "tcpmesh.echo",
        "add_arguments",
        "run",
    ),
)
"""Each command and where it lives: a module is imported only when its command is parsed (or for the whole help),
so `tcpmesh serve` does not import the client's HTTP stack (~0.14 s, before the translation worker can start)."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the command named `only` alone."""
    parser = argparse.ArgumentParser(prog="tcpmesh", description="Istio TCP traffic management without Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for c in COMMANDS:
        if only is not None and c.name != only:
            continue
        module = importlib.import_module(c.module)
        p = sub.add_parser(c.name, help=c.help, description=c.help)
        getattr(module, c.add_arguments)(p)
        p.set_defaults(run=getattr(module, c.run))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    named = given[0] if given and any(c.name == given[0] for c in COMMANDS) else None
    args = build_parser(named).parse_args(given)
    run: Runner = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
