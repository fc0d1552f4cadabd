"""The ``Finding`` value every analyzer returns, and the ``Code`` that stamps its identity and severity."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tcpmesh.model.resources import Meta

__all__ = ["Code", "Finding", "Level"]


class Level(enum.Enum):
    ERROR = "Error"
    WARNING = "Warning"
    INFO = "Info"


@dataclass(frozen=True, slots=True)
class Code:
    """A stable analyzer code (``TM0101``) with its name and fixed severity, as istioctl's ``IST0101``."""

    id: str
    name: str
    level: Level

    def at(self, meta: Meta, path: str, message: str) -> Finding:
        """A finding on ``path`` of the resource ``meta``, located at that field's line."""
        return Finding(
            code=self.id,
            name=self.name,
            severity=self.level,
            message=message,
            file=meta.source.file,
            line=meta.line_of(path) if path else meta.source.line,
            kind=meta.kind,
            namespace=meta.namespace,
            resource=meta.name,
            field=path,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    code: str
    name: str
    severity: Level
    message: str
    file: str = "<input>"
    line: int = 0
    kind: str = ""
    namespace: str = ""
    resource: str = ""
    field: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity is Level.ERROR

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.file, self.line, self.code, self.field)

    def to_dict(self) -> dict[str, str | int]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "namespace": self.namespace,
            "resource": self.resource,
            "field": self.field,
        }

    def __str__(self) -> str:
        """``file:line: Error [TM0101] VirtualService default/x: spec.tcp[0]...: message``."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where, f"{self.severity.value} [{self.code}]"]
        if self.kind:
            ident = f"{self.namespace}/{self.resource}" if self.namespace else self.resource
            parts[-1] += f" {self.kind} {ident}".rstrip()
        if self.field:
            parts.append(self.field)
        return ": ".join(parts) + f": {self.message}"
