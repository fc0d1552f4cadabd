"""Validation problems from ``load_config`` in the analyzer format, so one report lists both (istioctl IST0106)."""

from __future__ import annotations

from tcpmesh.analysis.codes import SCHEMA_VALIDATION_ERROR, SCHEMA_VALIDATION_WARNING
from tcpmesh.analysis.findings import Finding
from tcpmesh.model.problems import Problem, Severity

__all__ = ["finding_from_problem"]


def finding_from_problem(problem: Problem) -> Finding:
    code = SCHEMA_VALIDATION_ERROR if problem.severity is Severity.ERROR else SCHEMA_VALIDATION_WARNING
    return Finding(
        code=code.id,
        name=code.name,
        severity=code.level,
        message=problem.message,
        file=problem.file,
        line=problem.line,
        kind=problem.kind,
        namespace=problem.namespace,
        resource=problem.name,
        field=problem.field,
    )
