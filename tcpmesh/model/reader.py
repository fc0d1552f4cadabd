"""Strict, located reading of one YAML mapping: typed getters, field paths, unknown-field errors.

Every getter marks its key as known; :meth:`Reader.finish` reports the rest as unknown fields with a
"did you mean" hint, as kubectl's strict field validation does.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tcpmesh.model.problems import Problem, Severity
from tcpmesh.model.yamlsource import LocatedDict, LocatedList

__all__ = ["INT_RANGES", "MAX_UNKNOWN_FIELDS", "Context", "Reader", "parse_duration_ns"]

T = TypeVar("T")

# The protobuf scalar types of Istio's API fields, as istiod decodes them (protojson).
INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
MAX_UNKNOWN_FIELDS = 20
"""Unknown fields reported one by one in a mapping; the rest are counted in one problem (a file of 100 000
unknown keys costs a second, not minutes of "did you mean" searches and megabytes of output)."""
# Go's time.Duration (int64 nanoseconds) is what istiod parses durations into.
_MAX_DURATION_NS = 2**63 - 1


@dataclass
class Context:
    """Where problems are reported: the file and the resource being read."""

    file: str
    kind: str = ""
    namespace: str = ""
    name: str = ""
    problems: list[Problem] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    """Line of every field path read so far; validation uses it to locate semantic errors."""

    def report(self, path: str, line: int, message: str, severity: Severity = Severity.ERROR) -> None:
        self.problems.append(
            Problem(
                message=message,
                file=self.file,
                line=line,
                kind=self.kind,
                namespace=self.namespace,
                name=self.name,
                field=path,
                severity=severity,
            )
        )


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_duration_ns(text: str) -> int | None:
    """Parse a Go/protobuf duration ("1h", "1.5s", "100ms", "1m30s"); None if malformed."""
    if not text:
        return None
    if text == "0":
        return 0
    pos = 0
    total = 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            return None
        total += float(part.group(1)) * _UNIT_NS[part.group(2)]
        pos = part.end()
    if pos != len(text) or pos == 0 or not total <= _MAX_DURATION_NS:  # "not <=" also catches inf and nan
        return None
    return round(total)


class Reader:
    """Reads one mapping at ``path`` (e.g. ``spec.servers[0]``) and reports into ``ctx``."""

    def __init__(self, ctx: Context, data: LocatedDict, path: str) -> None:
        self.ctx = ctx
        self.data = data
        self.path = path
        self._known: set[str] = set()

    # -- locations --------------------------------------------------------------------------------

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def line(self, key: str | None = None) -> int:
        if key is None:
            return self.data.line
        return self.data.line_of(key)

    def report(self, key: str | None, message: str, severity: Severity = Severity.ERROR) -> None:
        self.ctx.report(self.sub(key) if key else self.path, self.line(key), message, severity)

    # -- raw access -------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return self._raw(key) is not None

    def _raw(self, key: str) -> Any:
        self._known.add(key)
        value = self.data.get(key)
        if key in self.data:
            path = self.sub(key)
            self.ctx.lines[path] = self.data.line_of(key)
            if isinstance(value, LocatedList):
                for i in range(len(value)):
                    self.ctx.lines[f"{path}[{i}]"] = value.line_of(i)
        return value

    def _typed(self, key: str, check: Callable[[Any], bool], expected: str) -> Any:
        value = self._raw(key)
        if value is None:
            return None
        if not check(value):
            self.report(key, f"expected {expected}, got {_type_name(value)}")
            return None
        return value

    # -- scalars ----------------------------------------------------------------------------------

    def string(self, key: str, default: str = "", *, required: bool = False) -> str:
        value = self._typed(key, lambda v: isinstance(v, str), "string")
        if value is None:
            if required and self._raw(key) is None:
                self.report(key, "required field is missing")
            return default
        return str(value)

    def str_or_int(self, key: str) -> str | int | None:
        """Kubernetes' IntOrString (an int32 when a number)."""
        value = self._typed(key, lambda v: isinstance(v, (str, int)) and not isinstance(v, bool), "integer or string")
        if isinstance(value, int) and not self._in_range(key, value, "int32"):
            return None
        return value if isinstance(value, (str, int)) else None

    def _in_range(self, key: str, value: int, proto: str) -> bool:
        low, high = INT_RANGES[proto]
        if low <= value <= high:
            return True
        self.report(key, f"invalid value for {proto} field {key}: {value}")
        return False

    def integer(self, key: str, default: int = 0, *, required: bool = False, proto: str = "int32") -> int:
        """An integer of protobuf type ``proto``; outside its range it is an error (and ``default``)."""
        value = self._typed(key, lambda v: isinstance(v, int) and not isinstance(v, bool), "integer")
        if value is None:
            if required and self._raw(key) is None:
                self.report(key, "required field is missing")
            return default
        return int(value) if self._in_range(key, int(value), proto) else default

    def opt_integer(self, key: str, *, proto: str = "int32") -> int | None:
        value = self._typed(key, lambda v: isinstance(v, int) and not isinstance(v, bool), "integer")
        return None if value is None or not self._in_range(key, int(value), proto) else int(value)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._typed(key, lambda v: isinstance(v, bool), "boolean")
        return default if value is None else bool(value)

    def opt_boolean(self, key: str) -> bool | None:
        value = self._typed(key, lambda v: isinstance(v, bool), "boolean")
        return None if value is None else bool(value)

    def enum(self, key: str, allowed: tuple[str, ...], default: str = "") -> str:
        value = self._typed(key, lambda v: isinstance(v, str), "string")
        if value is None:
            return default
        if value not in allowed:
            self.report(key, f"unsupported value {value!r}; expected one of {', '.join(allowed)}")
            return default
        return str(value)

    def duration_ms(self, key: str, *, allow_zero: bool = False) -> int | None:
        """A duration with istiod's rules: at least 1ms and whole milliseconds (``0s`` if allowed)."""
        value = self._typed(key, lambda v: isinstance(v, str), "duration string such as '10s'")
        if value is None:
            return None
        ns = parse_duration_ns(value)
        if ns is None:
            self.report(key, f"invalid duration {value!r}")
            return None
        if ns == 0 and allow_zero:
            return 0
        if ns < 1_000_000:
            self.report(key, "duration must be greater than 1ms")
            return None
        if ns % 1_000_000:
            self.report(key, "only durations to ms precision are supported")
            return None
        return ns // 1_000_000

    # -- collections ------------------------------------------------------------------------------

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self._typed(key, lambda v: isinstance(v, list), "array of strings")
        if value is None:
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(item)
            else:
                self.ctx.report(f"{self.sub(key)}[{i}]", _line_of(value, i), f"expected string, got {_type_name(item)}")
        return tuple(out)

    def labels(self, key: str) -> tuple[tuple[str, str], ...] | None:
        """A string map (labels, selectors); None when absent. Non-string values are errors."""
        value = self._typed(key, lambda v: isinstance(v, dict), "map of strings")
        if value is None:
            return None
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                self.ctx.report(self.sub(key), self.line(key), f"label key {k!r} must be a string")
            elif isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
                self.ctx.report(f"{self.sub(key)}.{k}", _line_of(value, k), f"expected string, got {_type_name(v)}")
            else:
                # Kubernetes rejects numbers here too; accept them as text but say so.
                if not isinstance(v, str):
                    self.ctx.report(
                        f"{self.sub(key)}.{k}",
                        _line_of(value, k),
                        f"expected string, got {_type_name(v)}; quote the value",
                    )
                    continue
                out[k] = v
                self.ctx.lines[f"{self.sub(key)}.{k}"] = _line_of(value, k)  # keys hold dots: record each one
        return tuple(sorted(out.items()))

    def int_map(self, key: str) -> tuple[tuple[str, int], ...]:
        value = self._typed(key, lambda v: isinstance(v, dict), "map of port numbers")
        if value is None:
            return ()
        out: dict[str, int] = {}
        low, high = INT_RANGES["uint32"]
        for k, v in value.items():
            if isinstance(v, int) and not isinstance(v, bool) and isinstance(k, str):
                if low <= v <= high:
                    out[k] = v
                else:
                    self.ctx.report(
                        f"{self.sub(key)}.{k}", _line_of(value, k), f"invalid value for uint32 field {k}: {v}"
                    )
            else:
                self.ctx.report(f"{self.sub(key)}.{k}", _line_of(value, k), f"expected integer, got {_type_name(v)}")
        return tuple(sorted(out.items()))

    def obj(self, key: str) -> Reader | None:
        value = self._typed(key, lambda v: isinstance(v, dict), "object")
        if value is None:
            return None
        return Reader(self.ctx, value, self.sub(key))

    def objects(self, key: str) -> Iterator[tuple[int, Reader | None]]:
        """Items of a list of objects; a null item yields None (the caller decides whether that is an error)."""
        value = self._typed(key, lambda v: isinstance(v, list), "array")
        if value is None:
            return
        for i, item in enumerate(value):
            path = f"{self.sub(key)}[{i}]"
            if item is None:
                yield i, None
            elif not isinstance(item, LocatedDict):
                self.ctx.report(path, _line_of(value, i), f"expected object, got {_type_name(item)}")
            elif isinstance(item, LocatedDict):
                yield i, Reader(self.ctx, item, path)

    def ignore(self, *keys: str) -> None:
        """Accept fields tcpmesh does not use (Kubernetes fields that only matter to a real cluster)."""
        self._known.update(keys)

    # -- end --------------------------------------------------------------------------------------

    def finish(self) -> None:
        unknown = [key for key in self.data if key not in self._known]
        for key in unknown[:MAX_UNKNOWN_FIELDS]:
            hint = ""
            if isinstance(key, str):
                close = difflib.get_close_matches(key, sorted(self._known), n=1, cutoff=0.6)
                if close:
                    hint = f"; did you mean {close[0]!r}?"
            self.ctx.report(self.sub(str(key)), self.data.line_of(key), f"unknown field{hint}")
        if len(unknown) > MAX_UNKNOWN_FIELDS:
            rest = unknown[MAX_UNKNOWN_FIELDS:]
            self.ctx.report(
                self.sub(str(rest[0])), self.data.line_of(rest[0]), f"and {len(rest)} more unknown fields here"
            )


def _line_of(container: Any, key: Any) -> int:
    if isinstance(container, LocatedDict):
        return container.line_of(key)
    if isinstance(container, LocatedList) and isinstance(key, int):
        return container.line_of(key)
    return 0
