"""Problems found in user input: one value per finding, never an exception to the user."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Problem", "Severity"]


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


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
