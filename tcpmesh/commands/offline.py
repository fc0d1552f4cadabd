"""Offline commands: `tcpmesh validate` and `tcpmesh dump PATH...` (no server, no Envoy)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tcpmesh.model.config import Config, load_config
from tcpmesh.model.gatewayapi.listeners import GATEWAY_NAME_LABEL
from tcpmesh.model.problems import Problem, capped
from tcpmesh.render import dump_json, dump_yaml, resources_to_dict
from tcpmesh.translator import Proxy, TranslateOptions, translate

__all__ = [
    "KINDS",
    "add_dump_arguments",
    "add_validate_arguments",
    "parse_labels",
    "proxy_from_args",
    "run_dump",
    "run_validate",
]

KINDS = {
    "listeners": ("listeners",),
    "clusters": ("clusters",),
    "endpoints": ("endpoints",),
    "extension_configs": ("extension_configs",),
    "routes": ("routes",),
    "secrets": ("secrets",),
    "all": ("listeners", "clusters", "endpoints", "extension_configs", "routes", "secrets"),
}


def print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="YAML files or directories")
    parser.add_argument("-n", "--namespace", default="default", help="namespace for resources without one")


def run_validate(args: argparse.Namespace) -> int:
    config, problems = load_config(args.paths, args.namespace)
    shown, more = capped(problems)
    for problem in shown:
        print(problem)
    if more:
        print(f"... and {more} more problems")
    errors = sum(1 for p in problems if p.is_error)
    if errors:
        return 1
    print(f"valid: {len(config)} resources", file=sys.stderr)
    return 0


def parse_labels(text: str) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected k=v[,k=v...], got {item!r}")
        out[key] = value
    return tuple(sorted(out.items()))


def add_dump_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="YAML files or directories (offline)")
    parser.add_argument("--server", metavar="ADDR", help="ask a running control plane (host:port of its HTTP API)")
    parser.add_argument("--token-file", type=Path, help="--server: the API's bearer token (as for tcpmesh get)")
    parser.add_argument("--cacert", type=Path, default=os.environ.get("TCPMESH_CACERT") or None, help=argparse.SUPPRESS)
    parser.add_argument("--proxy", default="gateway", help="offline: gateway or sidecar; --server: the proxy id")
    parser.add_argument(
        "--labels",
        type=parse_labels,
        default=None,
        help="proxy labels k=v,... (default istio=ingressgateway for a gateway)",
    )
    parser.add_argument(
        "--proxy-namespace",
        default=None,
        help="proxy namespace (default istio-system / default; with a gateway-name label, that Gateway's namespace)",
    )
    parser.add_argument("--type", choices=sorted(KINDS), default="all", help="which resources (default all)")
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    parser.add_argument("-n", "--namespace", default="default", help="namespace for resources without one")
    add_inline_weights_argument(parser)


def add_inline_weights_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inline-weights",
        action="store_true",
        help="istiod's exact form: tcp_proxy inline in each listener, so a route change drains live connections "
        "(default: each tcp_proxy is served by ECDS and a route change reaches new connections only)",
    )


def proxy_from_args(role: str, labels: tuple[tuple[str, str], ...] | None, namespace: str | None) -> Proxy:
    return Proxy.sidecar(namespace, labels) if role == "sidecar" else Proxy.gateway(namespace, labels)


def gateway_namespace(config: Config, labels: tuple[tuple[str, str], ...] | None) -> str | list[str] | None:
    """The namespace of the Gateway API Gateway a proxy labelled ``gateway-name=X`` belongs to (its proxies live
    in its namespace); every candidate when Gateways of that name exist in several; None when not such a proxy."""
    name = dict(labels or ()).get(GATEWAY_NAME_LABEL)
    if name is None:
        return None
    namespaces = sorted({gw.meta.namespace for gw in config.kube_gateways if gw.meta.name == name})
    if len(namespaces) > 1:
        return namespaces
    return namespaces[0] if namespaces else None


def render(data: dict[str, list[dict[str, object]]], output: str) -> str:
    return dump_json(data) if output == "json" else dump_yaml(data)


def run_dump(args: argparse.Namespace) -> int:
    if args.server:
        from tcpmesh.commands.client import dump_from_server

        return dump_from_server(args)
    if not args.paths:
        print("tcpmesh dump: give PATH... (offline) or --server ADDR", file=sys.stderr)
        return 2
    if args.proxy not in ("gateway", "sidecar"):
        print("tcpmesh dump: offline --proxy is gateway or sidecar", file=sys.stderr)
        return 2
    config, problems = load_config(args.paths, args.namespace)
    errors = [p for p in problems if p.is_error]
    print_problems(problems)
    if errors:
        print(f"tcpmesh dump: {len(errors)} error(s); nothing generated", file=sys.stderr)
        return 1
    namespace = args.proxy_namespace or gateway_namespace(config, args.labels)
    if isinstance(namespace, list):
        print(f"tcpmesh dump: Gateways named {dict(args.labels)[GATEWAY_NAME_LABEL]} exist in namespaces "
              f"{', '.join(namespace)}: give --proxy-namespace", file=sys.stderr)  # fmt: skip
        return 2
    options = TranslateOptions(inline_weights=args.inline_weights)
    resources = translate(config, proxy_from_args(args.proxy, args.labels, namespace), options)
    sys.stdout.write(render(resources_to_dict(resources, KINDS[args.type]), args.output))
    return 0
