"""Status conditions in the Gateway API's form (metav1.Condition without timestamps: the control plane's answer
is a pure function of the config, so it carries no clock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcpmesh.model.pickled import pickled_by_slots

__all__ = ["Cond", "ConfigError", "conditions"]


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class ConfigError:
    reason: str
    message: str

    def joined(self, other: ConfigError | None) -> ConfigError:
        """joinErrors: the first reason, both messages."""
        return self if other is None else ConfigError(self.reason, f"{self.message}; {other.message}")


@dataclass(slots=True)
class Cond:
    """One condition on success (``reason``/``message``/``status``); an ``error`` replaces reason and message and
    inverts the status, as Istio's ``condition`` does."""

    reason: str
    message: str
    status: bool = True
    error: ConfigError | None = None

    def to_json(self, type_: str) -> dict[str, Any]:
        if self.error is not None:
            status, reason, message = not self.status, self.error.reason, self.error.message
        else:
            status, reason, message = self.status, self.reason, self.message
        return {"type": type_, "status": "True" if status else "False", "reason": reason, "message": message}


def conditions(conds: dict[str, Cond]) -> list[dict[str, Any]]:
    return [c.to_json(t) for t, c in conds.items()]
