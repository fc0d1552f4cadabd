"""`tcpmesh bootstrap`: an Envoy bootstrap for a gateway or sidecar of this control plane, one or several replicas.

    tcpmesh bootstrap --control-plane 10.0.0.1:15010,10.0.0.2:15010 > envoy.yaml && envoy -c envoy.yaml

With several replicas (sharing one etcd store) the ADS cluster lists them all: when Envoy's replica goes away its
stream moves to another, which serves the same content-hashed versions, so nothing is re-applied or drained.
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from tcpmesh.commands.offline import parse_labels
from tcpmesh.runtime.bootstrap import gateway_bootstrap, sidecar_bootstrap

__all__ = ["add_arguments", "parse_control_planes", "run"]


def parse_control_planes(text: str) -> list[tuple[str, int]]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError(f"expected HOST:PORT[,HOST:PORT...], got {item!r}")
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise argparse.ArgumentTypeError("give at least one HOST:PORT")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--control-plane",
        type=parse_control_planes,
        default=[("127.0.0.1", 15010)],
        metavar="HOST:PORT[,...]",
        help="the control plane's ADS address, or several replicas' (default 127.0.0.1:15010)",
    )
    parser.add_argument("--proxy", choices=("gateway", "sidecar"), default="gateway", help="the proxy's role")
    parser.add_argument("--name", help="workload name (default istio-ingressgateway / client)")
    parser.add_argument("--namespace", help="the proxy's namespace (default istio-system / default)")
    parser.add_argument("--labels", type=parse_labels, default=None, help="workload labels k=v,...")
    parser.add_argument("--delta", action="store_true", help="incremental (delta) ADS")
    parser.add_argument("--admin-port", type=int, default=15000, help="Envoy admin port (default 15000)")
    parser.add_argument(
        "--admin-host",
        default="127.0.0.1",
        help="Envoy admin address (default 127.0.0.1; 0.0.0.0 in a container whose port is published)",
    )
    parser.add_argument(
        "--all-stats",
        action="store_true",
        help="keep every stat Envoy makes (no stats_config matcher): for debugging, costs memory at many clusters",
    )
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")


def run(args: argparse.Namespace) -> int:
    build = gateway_bootstrap if args.proxy == "gateway" else sidecar_bootstrap
    kwargs = {
        "control_planes": args.control_plane,
        "ads_api_type": "DELTA_GRPC" if args.delta else "GRPC",
        "admin_port": args.admin_port,
        "admin_host": args.admin_host,
        "all_stats": args.all_stats,
        **({"name": args.name} if args.name else {}),
        **({"namespace": args.namespace} if args.namespace else {}),
        **({"labels": dict(args.labels)} if args.labels is not None else {}),
    }
    config = build(**kwargs)
    out = json.dumps(config, indent=2) + "\n" if args.output == "json" else yaml.safe_dump(config, sort_keys=False)
    sys.stdout.write(out)
    return 0
