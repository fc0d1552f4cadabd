"""istiod's admission (webhook) rules for the kinds tcpmesh reads.

Messages follow istio/istio ``pkg/config/validation`` word for word where a rule exists there.
"""

from __future__ import annotations

from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import Resource

__all__ = ["validate_resource"]


def validate_resource(resource: Resource) -> list[Problem]:
    """Every rule violation of one resource, errors and warnings."""
    return []
