"""Strict validation of AWS requests against the botocore service models.

botocore validates what a client sends (and `Stubber` with it) for required members, unknown
members, types and minimum lengths only. The models hold more: enums, maximum lengths, numeric
ranges and patterns. `request_violations` checks all of it, recursively through structures,
lists and maps, and names every violation by its path:

    Settings.OutputGroups[0].Outputs[0].VideoDescription.Width: 5000 > max 4096

`highlights aws-plan` checks every request a run would send with it; the tests apply it to
every request any client makes (`tests/aws_strict.py`: `strict_aws()`).

Model patterns are Java regexes, matched against the whole value as the services do
(`highlights/aws/java_regex.py`); a pattern that cannot be translated raises.
"""

from __future__ import annotations

import decimal
import difflib
import functools
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import botocore.session
from botocore.exceptions import ParamValidationError
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.utils import parse_to_aware_datetime

from highlights.aws.java_regex import java_matches


@dataclass(frozen=True)
class Violation:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


class StrictValidationError(ParamValidationError):
    """A request breaks its service model; `violations` lists every problem with its path."""

    def __init__(self, what: str, violations: list[Violation]) -> None:
        lines = "\n".join(f"  {v}" for v in violations)
        super().__init__(report=f"{what} breaks the service model:\n{lines}")
        self.what = what
        self.violations = violations


@functools.cache
def service_model(service: str) -> ServiceModel:
    """The botocore model a client of `service` uses (service-2 plus SDK extras)."""
    return botocore.session.get_session().get_service_model(service)


def request_violations(
    model: ServiceModel | str, operation: str, params: Mapping[str, Any]
) -> list[Violation]:
    """Every way `params` breaks the input shape of `operation` (empty when it is valid)."""
    model = service_model(model) if isinstance(model, str) else model
    operation_model = model.operation_model(operation)
    return _violations(operation_model, params)


def check_request(model: ServiceModel | str, operation: str, params: Mapping[str, Any]) -> None:
    """Raise `StrictValidationError` unless `params` is a valid `operation` request."""
    model = service_model(model) if isinstance(model, str) else model
    violations = request_violations(model, operation, params)
    if violations:
        raise StrictValidationError(f"{model.service_name} {operation}", violations)


def _violations(operation_model: OperationModel, params: Mapping[str, Any]) -> list[Violation]:
    shape = operation_model.input_shape
    if shape is None:
        return [Violation("", f"takes no parameters, got {sorted(params)}")] if params else []
    walker = _Walker()
    walker.visit(shape, params, "")
    return walker.violations


def _join(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "long": "an integer",
    "float": "a number",
    "double": "a number",
    "boolean": "a boolean",
    "structure": "a dict (structure)",
    "map": "a dict (map)",
    "list": "a list",
    "blob": "bytes, str or a file-like object",
    "timestamp": "a datetime or timestamp string",
}


class _Walker:
    """Visits a value against its shape, collecting violations."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def report(self, path: str, problem: str) -> None:
        self.violations.append(Violation(path, problem))

    def visit(self, shape: Shape, value: Any, path: str) -> None:
        if value is None:
            self.report(
                path, f"is None; expected {_TYPE_NAMES.get(shape.type_name, shape.type_name)}"
            )
            return
        if shape.type_name == "structure" and shape.is_document_type:
            self.document(value, path)
            return
        if shape.type_name == "string" and shape.serialization.get("jsonvalue"):
            self.json_value(shape, value, path)
            return
        getattr(self, f"visit_{shape.type_name}")(shape, value, path)

    def wrong_type(self, shape: Shape, value: Any, path: str) -> None:
        expected = _TYPE_NAMES.get(shape.type_name, shape.type_name)
        self.report(path, f"expected {expected}, got {type(value).__name__} {_show(value)}")

    # --- containers

    def visit_structure(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            self.wrong_type(shape, value, path)
            return
        members = shape.members
        for name in shape.required_members:
            if name not in value:
                self.report(_join(path, name), "required member is missing")
        for name, item in value.items():
            if name in members:
                self.visit(members[name], item, _join(path, name))
            else:
                close = difflib.get_close_matches(str(name), list(members), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.report(_join(path, str(name)), f"unknown member{hint}")
        if shape.is_tagged_union and len(value) != 1:
            self.report(path, f"a union takes exactly one member, got {len(value)}")

    def visit_list(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, list | tuple):
            self.wrong_type(shape, value, path)
            return
        self.length(shape, len(value), path, "items")
        for index, item in enumerate(value):
            self.visit(shape.member, item, f"{path}[{index}]")

    def visit_map(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            self.wrong_type(shape, value, path)
            return
        self.length(shape, len(value), path, "entries")
        for key, item in value.items():
            self.visit(shape.key, key, f"{path} key {_show(key)}")
            self.visit(shape.value, item, f"{path}[{_show(key)}]")

    # --- scalars

    def visit_string(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, str):
            self.wrong_type(shape, value, path)
            return
        self.string_constraints(shape, value, path)

    def string_constraints(self, shape: Shape, value: str, path: str) -> None:
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            listed = ", ".join(enum[:12]) + (
                f", ... ({len(enum)} in all)" if len(enum) > 12 else ""
            )
            self.report(path, f"{_show(value)} is not one of {listed}")
        self.length(shape, len(value), path, "characters")
        pattern = shape.metadata.get("pattern")
        if pattern is not None and not java_matches(pattern, value):
            self.report(path, f"{_show(value)} does not match pattern `{pattern}`")

    def visit_integer(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.wrong_type(shape, value, path)
            return
        self.range(shape, value, path)

    visit_long = visit_integer

    def visit_double(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
            self.wrong_type(shape, value, path)
            return
        self.range(shape, value, path)

    visit_float = visit_double

    def visit_boolean(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            self.wrong_type(shape, value, path)

    def visit_timestamp(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, datetime | date | str | int | float):
            self.wrong_type(shape, value, path)
            return
        try:
            parse_to_aware_datetime(value)
        except (TypeError, ValueError, AttributeError, OverflowError):
            self.report(path, f"{_show(value)} is not a timestamp")

    def visit_blob(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bytes | bytearray):
            self.length(shape, len(value), path, "bytes")
        elif isinstance(value, str):
            self.length(shape, len(value.encode()), path, "bytes")
        elif hasattr(value, "read"):
            if "min" in shape.metadata or "max" in shape.metadata:
                self.length(shape, _stream_length(value, path), path, "bytes")
        else:
            self.wrong_type(shape, value, path)

    # --- special strings

    def document(self, value: Any, path: str) -> None:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.report(path, f"is not a JSON document ({exc})")

    def json_value(self, shape: Shape, value: Any, path: str) -> None:
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.report(path, f"cannot be sent as JSON ({exc})")
            return
        self.string_constraints(shape, text, path)

    # --- limits

    def length(self, shape: Shape, length: int, path: str, unit: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and length < low:
            self.report(path, f"{length} {unit} < min {low}")
        if high is not None and length > high:
            self.report(path, f"{length} {unit} > max {high}")

    def range(self, shape: Shape, value: float, path: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            self.report(path, f"{value} < min {low}")
        if high is not None and value > high:
            self.report(path, f"{value} > max {high}")


def _stream_length(stream: Any, path: str) -> int:
    """Bytes left in a seekable stream, position kept; a blob with limits needs its length."""
    try:
        start = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(start)
    except (AttributeError, OSError, ValueError) as exc:
        raise ValueError(
            f"{path}: the model limits its length, but the stream cannot tell it"
        ) from exc
    return end - start
