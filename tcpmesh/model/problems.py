"""Problems found in user input: one value per finding, never an exception to the user."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tcpmesh.model.pickled import pickled_by_slots

__all__ = ["MAX_SHOWN_PROBLEMS", "Problem", "Severity", "capped"]

MAX_SHOWN_PROBLEMS = 100
"""Problems shown in one answer (CLI output, API response); the rest are counted, so hostile input cannot make
an answer of megabytes."""


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One finding, located as precisely as the input allows.

    ``str(problem)`` is the one-line form `tcpmesh validate` prints:
    ``file:line: Kind namespace/name: field.path: message``.
    """

    message: str
    file: str = "<input>"
    line: int = 0
    kind: str = ""
    namespace: str = ""
    name: str = ""
    field: str = ""
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.kind:
            ident = f"{self.namespace}/{self.name}" if self.namespace else self.name
            parts.append(f"{self.kind} {ident}".rstrip())
        if self.field:
            parts.append(self.field)
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return ": ".join(parts) + f": {prefix}{self.message}"


def capped(problems: list[Problem], limit: int = MAX_SHOWN_PROBLEMS) -> tuple[list[Problem], int]:
    """The first ``limit`` problems, errors before warnings (input order kept within each), and how many were left
    out."""
    ordered = [p for p in problems if p.is_error] + [p for p in problems if not p.is_error]
    return ordered[:limit], max(0, len(ordered) - limit)
