"""`tcpmesh analyze PATH...`: validation problems and cross-resource findings, one line each (istioctl analyze)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tcpmesh.commands.offline import parse_labels
from tcpmesh.model.config import load_config
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy

__all__ = ["add_arguments", "proxies_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="YAML files or directories")
    parser.add_argument("-n", "--namespace", default="default", help="namespace for resources without one")
    parser.add_argument(
        "--proxy-labels",
        type=parse_labels,
        action="append",
        default=[],
        metavar="K=V,...",
        help="labels of one more gateway proxy besides the default ingress gateway (repeatable)",
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")


def proxies_from_args(extra: list[tuple[tuple[str, str], ...]]) -> list[Proxy]:
    """The default ingress gateway (istio=ingressgateway,app=istio-ingressgateway) plus each --proxy-labels."""
    return [Proxy.gateway()] + [Proxy.gateway(labels=labels) for labels in extra]


def run(args: argparse.Namespace) -> int:
    # Here, not at the top: every command imports this module, and the analyzers took ~0.15 s of a `serve` start.
    from tcpmesh.analysis import Finding, analyze, finding_from_problem

    config, problems = load_config(args.paths, args.namespace)
    findings = [finding_from_problem(p) for p in problems]
    findings += analyze(config, TranslateOptions(), proxies_from_args(args.proxy_labels))
    findings.sort(key=Finding.sort_key)
    if args.output == "json":
        print(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        for finding in findings:
            print(finding)
        if not findings:
            print(f"no issues found in {len(config)} resources", file=sys.stderr)
    return 1 if any(f.is_error for f in findings) else 0
