"""``delegate`` rules that contribute nothing (istiod logs these and drops the traffic to a 404): the delegate
VirtualService does not exist (or has hosts, so it is not a delegate), is not exported to the root's namespace
(TM0101), or one of its rules conflicts with every match of the delegating rule and is dropped (TM0108)."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import DELEGATE_RULE_DROPPED, REFERENCED_RESOURCE_NOT_FOUND
from tcpmesh.analysis.context import Context
from tcpmesh.analysis.findings import Finding
from tcpmesh.translator.delegate import delegate_of, merges

__all__ = ["analyze_delegates"]


def analyze_delegates(ctx: Context) -> Iterator[Finding]:
    delegates = {(d.meta.namespace, d.meta.name): d for d in ctx.config.virtual_services if not d.hosts}
    for vs in ctx.config.virtual_services:
        if not vs.hosts:
            continue
        for i, rule in enumerate(vs.http):
            if rule.delegate is None:
                continue
            path = f"spec.http[{i}].delegate"
            delegate = delegate_of(vs, rule, delegates)
            if isinstance(delegate, str):
                yield REFERENCED_RESOURCE_NOT_FOUND.at(
                    vs.meta,
                    path,
                    f"{delegate}; requests matching this rule fall to the rules after it (404 when none matches)",
                )
                continue
            for k, leaf in enumerate(delegate.http):
                if leaf.delegate is None and not merges(rule, vs.meta.namespace, leaf, delegate.meta.namespace):
                    yield DELEGATE_RULE_DROPPED.at(
                        delegate.meta,
                        f"spec.http[{k}].match" if leaf.match else f"spec.http[{k}]",
                        f"no match of this rule falls within a match of {vs.meta.key} spec.http[{i}], which "
                        "delegates to it; istiod drops the rule there (HTTPMatchRequests conflict)",
                    )
