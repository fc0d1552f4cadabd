"""The `tcpmesh` command line (kubectl / istioctl habits)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tcpmesh import echo, load, probe
from tcpmesh.commands import analyze, bootstrap, client, drain, offline, rollout, serve, up

__all__ = ["build_parser", "main"]

Runner = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tcpmesh", description="Istio TCP traffic management without Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, add: Callable[[argparse.ArgumentParser], None], run: Runner) -> None:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(run=run)

    command(
        "validate",
        "check Istio/Kubernetes YAML the way istiod's webhook would",
        offline.add_validate_arguments,
        offline.run_validate,
    )
    command(
        "analyze",
        "cross-resource findings (unknown gateway, host or subset, ignored VirtualServices, ...)",
        analyze.add_arguments,
        analyze.run,
    )
    command(
        "dump",
        "print the Envoy config generated for a proxy (offline from YAML, or --server)",
        offline.add_dump_arguments,
        offline.run_dump,
    )
    command(
        "up",
        "run control plane, Envoy gateway and echo backends locally (Ctrl-C stops all)",
        up.add_arguments,
        up.run,
    )
    command(
        "serve",
        "run the control plane alone: ADS, HTTP API and metrics over a config directory",
        serve.add_arguments,
        serve.run,
    )
    command(
        "apply",
        "validate and apply resources to the config store (like kubectl apply -f)",
        client.add_change_arguments,
        client.run_apply,
    )
    command(
        "delete",
        "delete resources from the config store (like kubectl delete -f)",
        client.add_change_arguments,
        client.run_delete,
    )
    command("get", "list resources in the config store", client.add_get_arguments, client.run_get)
    command(
        "status",
        "connected proxies: versions sent and ACKed per type, last NACK",
        client.add_status_arguments,
        client.run_status,
    )
    command(
        "bootstrap",
        "print an Envoy bootstrap for this control plane (one or several replicas)",
        bootstrap.add_arguments,
        bootstrap.run,
    )
    command(
        "rollout",
        "shift a VirtualService to a subset (a TCPRoute/TLSRoute to a backend) step by step, gated on the new "
        "destination's connect failures",
        rollout.add_arguments,
        rollout.run,
    )
    command(
        "drain",
        "close a subset's (a route backend's) live connections spread over a period (connection-preserving mode), "
        "so they rebalance",
        drain.add_arguments,
        drain.run,
    )
    command(
        "probe",
        "open N connections to HOST:PORT and print the split of replies by first word (one/two) with a 95%% interval"
        " (--http: requests, by HTTP echo version)",
        probe.add_arguments,
        probe.run,
    )
    command(
        "load",
        "send N HTTP requests over C concurrent connections (fortio load -c C -n N) and count the status codes",
        load.add_arguments,
        load.run,
    )
    command("echo", "a TCP echo server (Istio tcp-echo or the banner test server)", echo.add_arguments, echo.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Runner = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
