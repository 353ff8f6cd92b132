"""Parameters checked against SQS's own service model (botocore's), before any action
sees them: a wrong type anywhere is SQS's InvalidParameterValue (400), never a crash.

Only types are checked here, not ranges or names: the actions refuse those with SQS's
own messages. Unknown members are let through (the actions ignore them, as SQS does).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from jobdeck.queues.errors import invalid_parameter

if TYPE_CHECKING:
    from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape

# Larger numbers are no count, size or time SQS knows; Python's int() of a longer string
# of digits is refused (or slow), so such a string is a wrong type like any other.
MAX_INTEGER_DIGITS = 18


@functools.cache
def service_model() -> ServiceModel:
    # Loaded at the endpoint's first request, not at import: botocore and SQS's model
    # are several MB that a server without SQS traffic does not carry.
    import botocore.session

    return botocore.session.get_session().get_service_model("sqs")


def operation_names() -> frozenset[str]:
    return frozenset(service_model().operation_names)


def check_request(action: str, params: Mapping[str, Any]) -> None:
    """Raises InvalidParameterValue naming the first parameter of the wrong type."""
    model = service_model()
    if action not in model.operation_names:
        return
    shape = model.operation_model(action).input_shape
    if shape is not None:
        _check(params, shape, "")


def _check(value: Any, shape: Shape, path: str) -> None:
    kind = shape.type_name
    if value is None:
        return
    if kind == "structure":
        if not isinstance(value, Mapping):
            raise _wrong(path or "the request", "an object")
        for name, member in cast("StructureShape", shape).members.items():
            if name in value:
                _check(value[name], member, f"{path}.{name}" if path else name)
    elif kind == "list":
        if not isinstance(value, list):
            raise _wrong(path, "a list")
        member = cast("ListShape", shape).member
        for index, item in enumerate(value):
            _check(item, member, f"{path}.{index + 1}")
    elif kind == "map":
        if not isinstance(value, dict):
            raise _wrong(path, "a map")
        mapping = cast("MapShape", shape)
        for key, item in value.items():
            _check(key, mapping.key, f"{path} key")
            _check(item, mapping.value, f"{path}.{key}")
    elif kind in ("string", "blob"):
        if not isinstance(value, str):
            raise _wrong(path, "a string")
    elif kind in ("integer", "long"):
        if not _is_integer(value):
            raise _wrong(path, "an integer")
    elif kind == "boolean" and not isinstance(value, bool) and value not in ("true", "false"):
        raise _wrong(path, "a boolean")


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return len(str(abs(value))) <= MAX_INTEGER_DIGITS
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer() and abs(value) < 10**MAX_INTEGER_DIGITS
    if isinstance(value, str):
        digits = value.strip().removeprefix("-")
        return digits.isdigit() and digits.isascii() and len(digits) <= MAX_INTEGER_DIGITS
    return False


def _wrong(path: str, expected: str) -> Exception:
    return invalid_parameter(f"Value for parameter {path} is invalid. Reason: must be {expected}.")
